// The shell script a clone restored from a golden snapshot runs as root, over the guest channel,
// before it counts as ready. Every clone wakes up as the golden VM: same IP, MAC, hostname, host
// keys, machine-id, RNG state and a clock stopped at the snapshot instant. The script gives it its
// own; it is pure text built here and tested without a guest.
import { GUEST_AGENT_PATH } from "./types.js";

export interface NewIdentity {
  name: string;
  ip: string;
  prefix: number;
  gateway: string;
  mac: string;
  /** Nameservers for /etc/resolv.conf; empty for a VM without NAT (it has no resolver to reach). */
  nameservers: string[];
  hostKey: { privateKey: string; publicKey: string };
  authorizedKeys: string;
  /** 32 lowercase hex digits, as /etc/machine-id holds them. */
  machineId: string;
  /** A random UUID (lowercase, dashed), what the clone's /proc/sys/kernel/random/boot_id reads from now on. */
  bootId: string;
  /** Fresh random bytes from the host, hex, credited to the guest's pool and followed by a CRNG reseed. */
  seedHex: string;
  /** The host's clock when the script is sent, in milliseconds since the epoch. */
  nowMs: number;
  /** Root-only env files of the guest's protected services (the per-VM opencode password); those services restart. */
  secretFiles?: { path: string; content: string }[];
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IPV4_RE = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Single-quoted for sh: no expansion of anything inside. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function identityProblems(id: NewIdentity): string[] {
  const p: string[] = [];
  if (!IPV4_RE.test(id.ip)) p.push(`ip ${id.ip} is not IPv4`);
  if (!IPV4_RE.test(id.gateway)) p.push(`gateway ${id.gateway} is not IPv4`);
  if (!Number.isInteger(id.prefix) || id.prefix < 1 || id.prefix > 32) p.push(`prefix ${id.prefix} out of range`);
  if (!MAC_RE.test(id.mac)) p.push(`mac ${id.mac} is not a lowercase MAC address`);
  if (!/^[0-9a-f]{32}$/.test(id.machineId)) p.push("machine-id is not 32 hex digits");
  if (!/^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$/.test(id.bootId)) p.push("boot_id is not a lowercase UUID");
  if (!/^([0-9a-f]{2}){32,}$/.test(id.seedHex)) p.push("RNG seed is shorter than 32 bytes of hex");
  if (!/^[a-z0-9][a-z0-9-]*$/.test(id.name)) p.push(`hostname ${id.name} is not a plain host name`);
  return p;
}

/** The golden VM's service password is in the snapshot: each clone writes its own (builtins only). */
function secretLines(files: { path: string; content: string }[]): string {
  if (files.length === 0) return "";
  const lines = ["umask 077"];
  for (const f of files) {
    const dir = f.path.slice(0, f.path.lastIndexOf("/")) || "/";
    lines.push(`[ -d ${q(dir)} ] || mkdir -p ${q(dir)}`);
    lines.push(`printf '%s' ${q(f.content)} >${q(f.path)}`);
  }
  lines.push("umask 022", "mark secrets", "");
  return lines.join("\n");
}

/**
 * After SSH answers on the clone's own address: (re)start the protected services, which read the
 * password written by the re-identity. Not before: under TCG their start-up competes for the CPU
 * with the first SSH handshake. `restart`, not `try-restart`: a service that failed for want of a
 * password starts now; --no-block and in the background, because wait-services proves it answers
 * with the new password.
 */
export const RESTART_SERVICES_SCRIPT = `# In the background: systemctl's own start-up is not worth waiting for here.
(systemctl --no-block restart opencode.service || rc-service opencode restart) </dev/null >/dev/null 2>&1 &
echo "services restart requested"
`;

/**
 * The script, fed to `sh` on stdin by banger-channel's RUN (or `sh -s` over SSH for images older
 * than that), so the private host key never appears in a process list or a file other than its own.
 * A restored guest under TCG pays dearly for each process it starts, so it uses shell builtins
 * wherever they do: two programs in all (banger-agent or perl, and ip). The network last: a failure before it
 * leaves the clone reachable only over the channel. sshd is not signalled: it re-executes itself for
 * every connection and reads the new host key then, and SIGHUP would make the listener refuse
 * connections while it re-executes.
 */
export function reidentifyScript(id: NewIdentity): string {
  const problems = identityProblems(id);
  if (problems.length > 0) throw new Error(`bad identity for ${id.name}: ${problems.join("; ")}`);
  const seconds = (id.nowMs / 1000).toFixed(3);
  const resolv = id.nameservers.length
    ? ["# written by banger at create from a snapshot", ...id.nameservers.map((n) => `nameserver ${n}`)].join("\n")
    : "# No nameserver: this VM has no NAT.";
  return `set -eu
# Where the guest spends its time, reported on the last line: milliseconds of uptime between steps
# (/proc/uptime has centiseconds; the leading 1 keeps a fraction like 05 from reading as octal).
# No $(...): each one forks a subshell.
cs() { read -r up _ </proc/uptime; now=$(( \${up%.*} * 100 + 1\${up#*.} - 100 )); }
cs; t0=$now; times=""
mark() { cs; times="$times $1=$(( (now - t0) * 10 ))ms"; t0=$now; }
# The kernel's side: the clock (it stood still while the snapshot waited on disk); entropy, fresh
# host bytes credited to the input pool (RNDADDENTROPY) and the CRNG reseeded (RNDRESEEDCRNG), so
# no two clones share RNG output (firecracker-docs random-for-clones.md); and boot_id, which the
# kernel picks once, at its first read, and refuses to rewrite, so every clone would report the
# golden boot's: a file bound over it (as LXCFS does for /proc files) gives each clone its own for
# every reader from now on (a process that read it before the snapshot keeps the old value).
# banger-agent does all three where the image has it (one static program, the cheapest process a
# restored TCG guest can start, and the only way on images without perl); older images use one
# perl with x86_64 syscall numbers (banger's guests are x86_64): each program a restored TCG guest
# starts costs it 0.1-0.3 s, most of it translating code it has not run yet.
umask 022
printf '%s\\n' ${q(id.bootId)} >/run/banger-boot_id
if [ -x ${GUEST_AGENT_PATH} ]; then
  ${GUEST_AGENT_PATH} identity ${Math.floor(id.nowMs / 1000)} ${(id.nowMs % 1000) * 1_000_000} ${q(id.seedHex)}
elif command -v perl >/dev/null 2>&1; then
  perl -e 'my ($s, $ns, $seed) = @ARGV;
    syscall(227, 0, pack("qq", $s, $ns)) == 0 or die "clock_settime: $!";
    open(my $f, "+<", "/dev/urandom") or die "urandom: $!"; my $b = pack("H*", $seed);
    ioctl($f, 0x40085203, pack("ii", 8 * length($b), length($b)) . $b) or die "RNDADDENTROPY: $!";
    ioctl($f, 0x5207, 0) or die "RNDRESEEDCRNG: $!";
    my ($src, $dst) = ("/run/banger-boot_id", "/proc/sys/kernel/random/boot_id"); # syscall() wants writable strings
    syscall(165, $src, $dst, 0, 4096, 0) == 0 or die "mount --bind boot_id: $!";
    unlink "/var/lib/systemd/random-seed";' ${Math.floor(id.nowMs / 1000)} ${(id.nowMs % 1000) * 1_000_000} ${q(id.seedHex)}
else
  # Without either the pool is mixed but not credited, and the CRNG reseeds on its own schedule.
  date -u -s @${seconds} >/dev/null
  printf '%s' ${q(id.seedHex)} >/dev/urandom
  mount --bind /run/banger-boot_id /proc/sys/kernel/random/boot_id
  rm -f /var/lib/systemd/random-seed
fi
mark kernel

printf '%s\\n' ${q(id.machineId)} >/etc/machine-id
[ ! -e /var/lib/dbus/machine-id ] || printf '%s\\n' ${q(id.machineId)} >/var/lib/dbus/machine-id

umask 077
printf '%s\\n' ${q(id.hostKey.privateKey.trim())} >/etc/ssh/ssh_host_ed25519_key
umask 022
printf '%s\\n' ${q(id.hostKey.publicKey.trim())} >/etc/ssh/ssh_host_ed25519_key.pub
[ -d /etc/ssh/banger ] || mkdir -p /etc/ssh/banger
printf '%s\\n' ${q(id.authorizedKeys.trim())} >/etc/ssh/banger/authorized_keys
mark keys
${secretLines(id.secretFiles ?? [])}
echo ${q(id.name)} >/proc/sys/kernel/hostname
echo ${q(id.name)} >/etc/hostname
hosts="" named=""
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    127.0.1.1[[:space:]]*) line="127.0.1.1	${id.name}"; named=1 ;;
  esac
  hosts="$hosts$line
"
done </etc/hosts
[ -n "$named" ] || hosts="\${hosts}127.0.1.1	${id.name}
"
printf '%s' "$hosts" >/etc/hosts
printf '%s\\n' ${q(resolv)} >/etc/resolv.conf
mark names

# The NIC: down, new MAC, up; then the address and the default route on it. In one ip process
# where ip is iproute2's (it ships /etc/iproute2); busybox's ip (Alpine) has no -batch.
if [ -d /etc/iproute2 ]; then
  ip -batch - <<'NET'
link set dev eth0 down
link set dev eth0 address ${id.mac}
addr flush dev eth0
link set dev eth0 up
addr add ${id.ip}/${id.prefix} dev eth0
route replace default via ${id.gateway} dev eth0
NET
else
  ip link set dev eth0 down
  ip link set dev eth0 address ${id.mac}
  ip addr flush dev eth0
  ip link set dev eth0 up
  ip addr add ${id.ip}/${id.prefix} dev eth0
  ip route replace default via ${id.gateway} dev eth0
fi
mark net

read -r host </proc/sys/kernel/hostname
read -r mac </sys/class/net/eth0/address
echo "reidentified $host $mac ${id.ip} (guest:$times)"
`;
}
