import { accessSync, constants, mkdirSync, openSync, closeSync } from "node:fs";
import type { LoadedConfig } from "../config/load.js";
import { which } from "../adapters/exec/which.js";
import type { AppDeps } from "./deps.js";
import type { ImageService } from "./images.js";
import { artifactOf } from "../domain/types.js";

export type CheckStatus = "PASS" | "WARN" | "FAIL";

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  checks: Check[];
  ok: boolean;
}

/** Probes that need nothing from the daemon, so the CLI can run them when bangerd is down. */
export interface HostProbes {
  vmmVersion(kind: "firecracker" | "qemu"): Promise<string>;
  accelVerdict(): Promise<{ accel: string; reason: string }>;
  sshKeyProblem(): Promise<string | undefined>;
}

const TOOLS: [string, string][] = [
  ["ip", "iproute2"], ["nft", "nftables"], ["mkfs.ext4", "e2fsprogs"], ["resize2fs", "e2fsprogs"],
  ["debugfs", "e2fsprogs"], ["e2fsck", "e2fsprogs"], ["ssh", "openssh-client"], ["ssh-keygen", "openssh-client"],
];

function kvmCheck(): Check {
  try {
    closeSync(openSync("/dev/kvm", constants.O_RDWR));
    return { name: "kvm", status: "PASS", detail: "/dev/kvm opens read/write" };
  } catch (e) {
    return { name: "kvm", status: "WARN", detail: `/dev/kvm: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      fix: "firecracker needs KVM: load kvm_intel/kvm_amd and add yourself to group kvm; the qemu driver falls back to TCG" };
  }
}

export async function hostChecks(cfg: LoadedConfig, probes: HostProbes): Promise<Check[]> {
  const c = cfg.config;
  const checks: Check[] = [kvmCheck()];
  try {
    const v = await probes.accelVerdict();
    checks.push({ name: "kvm-guest", status: v.accel === "kvm" ? "PASS" : "WARN", detail: `${v.accel}: ${v.reason}`,
      fix: v.accel === "kvm" ? undefined : "guests run under TCG (software emulation): slower boots, but they work" });
  } catch (e) {
    checks.push({ name: "kvm-guest", status: "WARN", detail: `probe failed: ${(e as Error).message}` });
  }
  for (const kind of ["firecracker", "qemu"] as const) {
    const selected = c.vmm === kind;
    try {
      checks.push({ name: kind, status: "PASS", detail: `${await probes.vmmVersion(kind)}${selected ? " (selected vmm)" : ""}` });
    } catch (e) {
      const fix = kind === "firecracker"
        ? "install firecracker and set `firecracker_bin` or put it on PATH; or set `vmm = \"qemu\"` in the config"
        : "apt-get install qemu-system-x86 (or set `qemu_bin`)";
      checks.push({ name: kind, status: selected ? "FAIL" : "WARN", detail: (e as Error).message, fix });
    }
  }
  for (const [tool, pkg] of TOOLS) {
    const p = which(tool);
    checks.push(p ? { name: tool, status: "PASS", detail: p } : { name: tool, status: "FAIL", detail: "not found", fix: `apt-get install ${pkg}` });
  }
  try {
    mkdirSync(cfg.paths.stateDir, { recursive: true });
    accessSync(cfg.paths.stateDir, constants.W_OK);
    checks.push({ name: "state-dir", status: "PASS", detail: `${cfg.paths.stateDir} is writable` });
  } catch (e) {
    checks.push({ name: "state-dir", status: "FAIL", detail: `${cfg.paths.stateDir}: ${(e as Error).message}`, fix: "set `state_dir` to a directory you can write" });
  }
  const keyProblem = await probes.sshKeyProblem();
  const keyPath = c.ssh_key ?? cfg.paths.defaultSshKey;
  checks.push(keyProblem
    ? { name: "ssh-key", status: c.ssh_key ? "FAIL" : "WARN", detail: keyProblem, fix: c.ssh_key ? "fix the key at `ssh_key` (chmod 600) or unset it to use the auto-managed key" : "it is created on first VM create" }
    : { name: "ssh-key", status: "PASS", detail: `${keyPath}${c.ssh_key ? "" : " (auto-managed)"}` });
  return checks;
}

async function imageChecks(images: ImageService): Promise<Check[]> {
  const all = images.list();
  if (all.length === 0) {
    return [{ name: "images", status: "WARN", detail: "no images registered", fix: "build and register one with `make image-debian`, or `banger image register`" }];
  }
  const problems = await images.verifyChecksums();
  return all.map((img) => {
    const problem = problems.get(img.name);
    const seed = artifactOf(img, "work_seed") ? "work-seed ok" : "no work-seed: VMs get an empty /root (fallback)";
    const alias = img.aliases.length ? ` [${img.aliases.join(", ")}]` : "";
    if (problem) return { name: `image ${img.name}`, status: "FAIL", detail: problem, fix: "re-register the image from its build output" };
    return { name: `image ${img.name}${alias}`, status: artifactOf(img, "work_seed") ? "PASS" : "WARN",
      detail: `${img.artifacts.length} artifacts, checksums match; ${seed}` };
  });
}

async function networkChecks(d: AppDeps): Promise<Check[]> {
  try {
    const s = await d.network.status();
    const anyNat = d.store.listVms().some((v) => v.nat && v.state === "running");
    return [
      s.bridge.exists && s.bridge.up
        ? { name: "bridge", status: "PASS", detail: `${s.bridge.name} up, ${s.bridge.address ?? "no address"}` }
        : { name: "bridge", status: "FAIL", detail: `${s.bridge.name} ${s.bridge.exists ? "down" : "missing"}`, fix: "restart bangerd; it creates the bridge at start" },
      { name: "nat", status: s.natTable ? "PASS" : "FAIL", detail: `nft table banger ${s.natTable ? "present" : "missing"}; uplink ${s.uplink ?? "none"}; ${s.natAddresses.length} NAT guest(s)`,
        fix: s.natTable ? undefined : "restart bangerd; it installs the table at start" },
      { name: "ip_forward", status: s.ipForward || !anyNat ? "PASS" : "FAIL", detail: s.ipForward ? "on" : "off (turned on by the first --nat VM)" },
      { name: "tap-pool", status: "PASS", detail: `${s.poolIdle.length} idle of ${d.cfg.config.tap_pool_size}; ${s.taps.length} banger TAPs` },
    ];
  } catch (e) {
    return [{ name: "network", status: "FAIL", detail: (e as Error).message }];
  }
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;

/** Pool disk usage against disk_pool_max_gib; WARN once refills are held back by the cap. */
export async function diskPoolCheck(d: AppDeps): Promise<Check> {
  const u = await d.diskPool.usage();
  const nameOf = (id: string) => d.store.getImageById(id)?.name ?? id;
  const sets = Object.entries(u.sets).map(([id, n]) => `${nameOf(id)} ${n}`).join(", ") || "no sets";
  const atCap = u.maxBytes > 0 && (u.capped.length > 0 || u.bytes >= u.maxBytes);
  const detail = `${sets}; ${gib(u.bytes)} of ${u.maxBytes > 0 ? `${gib(u.maxBytes)} (disk_pool_max_gib)` : "no cap"}`
    + (u.capped.length ? `; not refilling ${u.capped.map(nameOf).join(", ")}` : "");
  return atCap
    ? { name: "disk-pool", status: "WARN", detail, fix: "raise `disk_pool_max_gib`, lower `disk_pool_size`, or remove images you no longer use; creates without a warm set copy disks at create time" }
    : { name: "disk-pool", status: "PASS", detail };
}

export async function runDoctor(d: AppDeps, images: ImageService): Promise<DoctorReport> {
  const checks = [
    ...(await hostChecks(d.cfg, d.probes)),
    { name: "daemon", status: "PASS", detail: `bangerd serving ${d.cfg.paths.socket}` } as Check,
    ...(await imageChecks(images)),
    ...(await networkChecks(d)),
    await diskPoolCheck(d),
  ];
  return { checks, ok: checks.every((c) => c.status !== "FAIL") };
}
