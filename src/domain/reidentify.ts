// The shell script a clone restored from a golden snapshot runs as root, over the guest channel,
// before it counts as ready. Every clone wakes up as the golden VM: same IP, MAC, hostname, host
// keys, machine-id, RNG state and a clock stopped at the snapshot instant. The script gives it its
// own; it is pure text built here and tested without a guest.

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
  if (!/^([0-9a-f]{2}){32,}$/.test(id.seedHex)) p.push("RNG seed is shorter than 32 bytes of hex");
  if (!/^[a-z0-9][a-z0-9-]*$/.test(id.name)) p.push(`hostname ${id.name} is not a plain host name`);
  return p;
}

/**
 * The script, fed to `sh -s` on stdin (so the private host key never appears in a process list).
 * Order matters: the network last but one, so a failure before it leaves the clone unreachable on
 * the golden IP only briefly; sshd is reloaded after its keys changed (the session running this
 * script is not affected: it is already established, and over the channel, not the IP).
 */
/** The golden VM's service password is in the snapshot: each clone writes its own and restarts the services. */
function secretLines(files: { path: string; content: string }[]): string {
  if (files.length === 0) return "";
  const lines = ["umask 077"];
  for (const f of files) {
    lines.push(`mkdir -p ${q(f.path.slice(0, f.path.lastIndexOf("/")) || "/")}`);
    lines.push(`printf '%s' ${q(f.content)} >${q(f.path)}`);
  }
  // restart, not try-restart: a service that failed for want of a password starts now. --no-block:
  // it comes back on its own, and wait-services proves it answers with the new password.
  lines.push(
    "umask 022",
    "systemctl --no-block restart opencode.service 2>/dev/null || rc-service opencode restart >/dev/null 2>&1 || true",
    "mark secrets",
    "",
  );
  return lines.join("\n");
}

export function reidentifyScript(id: NewIdentity): string {
  const problems = identityProblems(id);
  if (problems.length > 0) throw new Error(`bad identity for ${id.name}: ${problems.join("; ")}`);
  const seconds = (id.nowMs / 1000).toFixed(3);
  const resolv = id.nameservers.length
    ? ["# written by banger at create from a snapshot", ...id.nameservers.map((n) => `nameserver ${n}`)].join("\n")
    : "# No nameserver: this VM has no NAT.";
  return `set -eu
# Where the guest spends its time, reported on the last line (seconds of uptime between steps).
t0=$(cut -d' ' -f1 /proc/uptime); times=""
mark() { t=$(cut -d' ' -f1 /proc/uptime); times="$times $1=$(echo "$t $t0" | awk '{printf "%.2f", $1 - $2}')"; t0=$t; }
# The clock first: it stood still while the snapshot waited on disk.
date -u -s @${seconds} >/dev/null
mark clock

# Entropy: credit fresh host bytes to the input pool (RNDADDENTROPY), then reseed the CRNG
# (RNDRESEEDCRNG), so no two clones share RNG output (firecracker-docs random-for-clones.md).
if command -v perl >/dev/null 2>&1; then
  perl -e 'open(my $f, "+<", "/dev/urandom") or die "urandom: $!"; my $b = pack("H*", $ARGV[0]);
    ioctl($f, 0x40085203, pack("ii", 8 * length($b), length($b)) . $b) or die "RNDADDENTROPY: $!";
    ioctl($f, 0x5207, 0) or die "RNDRESEEDCRNG: $!";' ${q(id.seedHex)}
else
  printf '%s' ${q(id.seedHex)} >/dev/urandom
fi
rm -f /var/lib/systemd/random-seed
mark rng

printf '%s\\n' ${q(id.machineId)} >/etc/machine-id
[ -e /var/lib/dbus/machine-id ] && printf '%s\\n' ${q(id.machineId)} >/var/lib/dbus/machine-id || true

umask 077
printf '%s\\n' ${q(id.hostKey.privateKey.trim())} >/etc/ssh/ssh_host_ed25519_key.new
umask 022
printf '%s\\n' ${q(id.hostKey.publicKey.trim())} >/etc/ssh/ssh_host_ed25519_key.pub
mv /etc/ssh/ssh_host_ed25519_key.new /etc/ssh/ssh_host_ed25519_key
mkdir -p /etc/ssh/banger
printf '%s\\n' ${q(id.authorizedKeys.trim())} >/etc/ssh/banger/authorized_keys
# sshd re-executes itself for each connection and reads the host key then; SIGHUP makes the
# listener re-read its configuration too. Not systemctl: it waits on systemd, which a guest
# that just woke up from a snapshot may keep busy for a while.
kill -HUP "$(cat /run/sshd.pid 2>/dev/null)" 2>/dev/null || systemctl reload ssh.service
mark keys
${secretLines(id.secretFiles ?? [])}
echo ${q(id.name)} >/proc/sys/kernel/hostname
echo ${q(id.name)} >/etc/hostname
if grep -q '^127\\.0\\.1\\.1[[:space:]]' /etc/hosts; then
  sed -i "s/^127\\.0\\.1\\.1[[:space:]].*/127.0.1.1\\t${id.name}/" /etc/hosts
else
  printf '127.0.1.1\\t%s\\n' ${q(id.name)} >>/etc/hosts
fi
printf '%s\\n' ${q(resolv)} >/etc/resolv.conf
mark names

# The NIC: down, new MAC, up; then the address and the default route on it.
ip link set dev eth0 down
ip link set dev eth0 address ${id.mac}
ip addr flush dev eth0
ip link set dev eth0 up
ip addr add ${id.ip}/${id.prefix} dev eth0
ip route replace default via ${id.gateway} dev eth0
mark net

echo "reidentified $(cat /proc/sys/kernel/hostname) $(cat /sys/class/net/eth0/address) ${id.ip} (guest s:$times)"
`;
}
