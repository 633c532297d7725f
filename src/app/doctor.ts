import type { HostCheckConfig, HostFacts } from "../ports/host.js";
import type { NetworkStatus } from "../ports/network.js";
import type { AppConfig, AppDeps } from "./deps.js";
import type { ImageService } from "./images.js";
import { artifactOf } from "../domain/types.js";
import { protectionChecks } from "./protections.js";

import type { Check } from "./checks.js";

export type { Check, CheckStatus } from "./checks.js";

export interface DoctorReport {
  checks: Check[];
  ok: boolean;
}

const TOOLS: [string, string][] = [
  ["ip", "iproute2"],
  ["nft", "nftables"],
  ["mkfs.ext4", "e2fsprogs"],
  ["resize2fs", "e2fsprogs"],
  ["debugfs", "e2fsprogs"],
  ["e2fsck", "e2fsprogs"],
  ["ssh", "openssh-client"],
  ["ssh-keygen", "openssh-client"],
];

export async function hostChecks(c: HostCheckConfig, host: HostFacts): Promise<Check[]> {
  const kvm = host.kvm();
  const checks: Check[] = [
    kvm.ok
      ? { name: "kvm", status: "PASS", detail: kvm.detail }
      : {
          name: "kvm",
          status: "WARN",
          detail: kvm.detail,
          fix: "firecracker needs KVM: load kvm_intel/kvm_amd and add yourself to group kvm; the qemu driver falls back to TCG",
        },
  ];
  try {
    const v = await host.accelVerdict();
    checks.push({
      name: "kvm-guest",
      status: v.accel === "kvm" ? "PASS" : "WARN",
      detail: `${v.accel}: ${v.reason}`,
      fix: v.accel === "kvm" ? undefined : "guests run under TCG (software emulation): slower boots, but they work",
    });
  } catch (e) {
    checks.push({ name: "kvm-guest", status: "WARN", detail: `probe failed: ${(e as Error).message}` });
  }
  for (const kind of ["firecracker", "qemu"] as const) {
    const selected = c.vmm === kind;
    try {
      checks.push({ name: kind, status: "PASS", detail: `${await host.vmmVersion(kind)}${selected ? " (selected vmm)" : ""}` });
    } catch (e) {
      const fix =
        kind === "firecracker"
          ? 'install firecracker and set `firecracker_bin` or put it on PATH; or set `vmm = "qemu"` in the config'
          : "apt-get install qemu-system-x86 (or set `qemu_bin`)";
      checks.push({ name: kind, status: selected ? "FAIL" : "WARN", detail: (e as Error).message, fix });
    }
  }
  for (const [tool, pkg] of TOOLS) {
    const p = host.which(tool);
    checks.push(p ? { name: tool, status: "PASS", detail: p } : { name: tool, status: "FAIL", detail: "not found", fix: `apt-get install ${pkg}` });
  }
  const dirProblem = host.dirProblem(c.stateDir);
  checks.push(
    dirProblem
      ? { name: "state-dir", status: "FAIL", detail: dirProblem, fix: "set `state_dir` to a directory you can write" }
      : { name: "state-dir", status: "PASS", detail: `${c.stateDir} is writable` },
  );
  const keyProblem = await host.sshKeyProblem();
  const keyPath = c.sshKey ?? c.defaultSshKey;
  checks.push(
    keyProblem
      ? {
          name: "ssh-key",
          status: c.sshKey ? "FAIL" : "WARN",
          detail: keyProblem,
          fix: c.sshKey ? "fix the key at `ssh_key` (chmod 600) or unset it to use the auto-managed key" : "it is created on first VM create",
        }
      : { name: "ssh-key", status: "PASS", detail: `${keyPath}${c.sshKey ? "" : " (auto-managed)"}` },
  );
  checks.push(...(await protectionChecks(c, host)));
  return checks;
}

async function imageChecks(images: ImageService): Promise<Check[]> {
  const all = images.list();
  if (all.length === 0) {
    return [
      { name: "images", status: "WARN", detail: "no images registered", fix: "build and register one with `make image-debian`, or `banger image register`" },
    ];
  }
  const problems = await images.verifyChecksums();
  return all.map((img) => {
    const problem = problems.get(img.name);
    const seed = artifactOf(img, "work_seed") ? "work-seed ok" : "no work-seed: VMs get an empty /root (fallback)";
    const alias = img.aliases.length ? ` [${img.aliases.join(", ")}]` : "";
    if (problem) return { name: `image ${img.name}`, status: "FAIL", detail: problem, fix: "re-register the image from its build output" };
    return {
      name: `image ${img.name}${alias}`,
      status: artifactOf(img, "work_seed") ? "PASS" : "WARN",
      detail: `${img.artifacts.length} artifacts, checksums match; ${seed}`,
    };
  });
}

type DoctorDeps = Pick<AppDeps, "host" | "network" | "store" | "diskPool" | "vmPool" | "forwarder"> & {
  config: Pick<AppConfig, "tapPoolSize" | "socket" | "hostCheck">;
};

async function networkChecks(d: DoctorDeps): Promise<Check[]> {
  try {
    const s = await d.network.status();
    const anyNat = d.store.listVms().some((v) => v.nat && v.state === "running");
    return [
      s.bridge.exists && s.bridge.up
        ? { name: "bridge", status: "PASS", detail: `${s.bridge.name} up, ${s.bridge.address ?? "no address"}` }
        : {
            name: "bridge",
            status: "FAIL",
            detail: `${s.bridge.name} ${s.bridge.exists ? "down" : "missing"}`,
            fix: "restart bangerd; it creates the bridge at start",
          },
      {
        name: "nat",
        status: s.natTable ? "PASS" : "FAIL",
        detail: `nft table banger ${s.natTable ? "present" : "missing"}; uplink ${s.uplink ?? "none"}; ${s.natAddresses.length} NAT guest(s)`,
        fix: s.natTable ? undefined : "restart bangerd; it installs the table at start",
      },
      { name: "ip_forward", status: s.ipForward || !anyNat ? "PASS" : "FAIL", detail: s.ipForward ? "on" : "off (turned on by the first --nat VM)" },
      { name: "tap-pool", status: "PASS", detail: `${s.poolIdle.length} idle of ${d.config.tapPoolSize}; ${s.taps.length} banger TAPs` },
      ...isolationChecks(d, s),
    ];
  } catch (e) {
    return [{ name: "network", status: "FAIL", detail: (e as Error).message }];
  }
}

/** Guest isolation (docs/security.md): each layer PASS, or FAIL with what to do. */
function isolationChecks(d: DoctorDeps, s: NetworkStatus): Check[] {
  const peered = new Set(s.isolation.peers.flatMap((p) => p.split(" . ")));
  const stray = s.isolation.unisolatedTaps.filter((t) => !peered.has(t));
  const wanted = d.store.listForwards();
  const live = new Set(d.forwarder.active().map((f) => `${f.hostAddress}:${f.hostPort}`));
  const down = wanted.filter((f) => !live.has(`${f.hostAddress}:${f.hostPort}`)).map((f) => `${f.hostAddress}:${f.hostPort}`);
  const restart = "restart bangerd; it rebuilds its nft tables and port flags at start";
  return [
    s.isolation.inputDrop
      ? { name: "guest->host", status: "PASS", detail: "input from the bridge dropped (replies to the host's own connections excepted)" }
      : { name: "guest->host", status: "FAIL", detail: "banger's input drop is missing: guests can reach host services", fix: restart },
    s.isolation.bridgeFilter && stray.length === 0
      ? {
          name: "guest<->guest",
          status: "PASS",
          detail: `TAPs are isolated bridge ports; ${s.isolation.peers.length / 2} peer pair(s)`,
        }
      : {
          name: "guest<->guest",
          status: "FAIL",
          detail: s.isolation.bridgeFilter ? `TAPs without isolation and without a peer: ${stray.join(", ")}` : "nft table `bridge banger` is missing",
          fix: restart,
        },
    down.length === 0
      ? { name: "port-forwards", status: "PASS", detail: `${wanted.length} forward(s) listening` }
      : {
          name: "port-forwards",
          status: "WARN",
          detail: `not listening: ${down.join(", ")} (the port is taken)`,
          fix: "free the port and restart bangerd, or `banger vm port rm` it",
        },
  ];
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/** Pool disk usage against disk_pool_max_gib; WARN once refills are held back by the cap. */
export async function diskPoolCheck(d: Pick<DoctorDeps, "diskPool" | "store">): Promise<Check> {
  const u = await d.diskPool.usage();
  const nameOf = (id: string) => d.store.getImageById(id)?.name ?? id;
  const sets =
    Object.entries(u.sets)
      .map(([id, n]) => `${nameOf(id)} ${n}`)
      .join(", ") || "no sets";
  const atCap = u.maxBytes > 0 && (u.capped.length > 0 || u.bytes >= u.maxBytes);
  const detail =
    `${sets}; ${gib(u.bytes)} of ${u.maxBytes > 0 ? `${gib(u.maxBytes)} (disk_pool_max_gib)` : "no cap"}` +
    (u.capped.length ? `; not refilling ${u.capped.map(nameOf).join(", ")}` : "");
  return atCap
    ? {
        name: "disk-pool",
        status: "WARN",
        detail,
        fix: "raise `disk_pool_max_gib`, lower `disk_pool_size`, or remove images you no longer use; creates without a warm set copy disks at create time",
      }
    : { name: "disk-pool", status: "PASS", detail };
}

/** The paused-VM pool: members per image against vm_pool_size; WARN while a memory limit holds refills back. */
export function vmPoolCheck(d: Pick<DoctorDeps, "vmPool" | "store">): Check {
  const s = d.vmPool.stats();
  if (s.size === 0) return { name: "vm-pool", status: "PASS", detail: "off (vm_pool_size = 0)" };
  const members =
    Object.entries(s.members)
      .map(([id, n]) => `${d.store.getImageById(id)?.name ?? id} ${n}`)
      .join(", ") || "no members (images need a snapshot: `banger image snapshot`)";
  const detail = `${members} of ${s.size} per image; ${s.memoryMib} MiB${s.maxMemoryMib ? ` of ${s.maxMemoryMib} MiB (vm_pool_max_memory_mib)` : ", no cap"}`;
  return s.capped
    ? {
        name: "vm-pool",
        status: "WARN",
        detail: `${detail}; not refilling: ${s.capped}`,
        fix: "raise `vm_pool_max_memory_mib` or free host memory, or lower `vm_pool_size`; creates without a paused member restore from the snapshot",
      }
    : { name: "vm-pool", status: "PASS", detail };
}

export async function runDoctor(d: DoctorDeps, images: ImageService): Promise<DoctorReport> {
  const checks = [
    ...(await hostChecks(d.config.hostCheck, d.host)),
    { name: "daemon", status: "PASS", detail: `bangerd serving ${d.config.socket}` } as Check,
    ...(await imageChecks(images)),
    ...(await networkChecks(d)),
    await diskPoolCheck(d),
    vmPoolCheck(d),
  ];
  return { checks, ok: checks.every((c) => c.status !== "FAIL") };
}
