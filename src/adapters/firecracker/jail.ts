import { copyFile, link, mkdir, rm, rmdir } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { BangerError } from "../../domain/errors.js";
import type { VmmSpec } from "../../ports/vmm.js";
import type { VmmUser } from "../exec/privilege.js";
import { instanceId } from "./schemas.js";

/** How the driver runs firecracker through the jailer (jailer.md); built once in wire.ts. */
export interface JailerOptions {
  /** Absolute path of the jailer binary. */
  bin: string;
  /** The jailed uid/gid; the jailer refuses to run without them, so no user means no jailer. */
  user: VmmUser;
  /** cgroup v2 mount point; the jailer creates <cgroupRoot>/<parentCgroup>/<id>. */
  cgroupRoot?: string;
  parentCgroup?: string;
}

export const DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup";

/**
 * Where cgroup v2 is mounted, found in /proc/mounts as the jailer finds it (hybrid hosts mount it
 * at /sys/fs/cgroup/unified); /sys/fs/cgroup when none is listed.
 */
export function cgroup2Mount(mounts = "/proc/mounts"): string {
  try {
    for (const line of readFileSync(mounts, "utf8").split("\n")) {
      const [, target, type] = line.split(" ");
      if (type === "cgroup2" && target) return target;
    }
  } catch {
    // no /proc: the default
  }
  return DEFAULT_CGROUP_ROOT;
}
export const DEFAULT_PARENT_CGROUP = "banger";
/** What the jailed process may use beyond the guest's RAM: firecracker itself and its page cache. */
export const MEMORY_OVERHEAD_MIB = 128;
const CPU_PERIOD_US = 100_000;

/** Where one VM's jail lives: `<chrootBase>/<exec file name>/<id>/root` (jailer.md). */
export interface JailLayout {
  id: string;
  /** `<chrootBase>/<exec file name>/<id>`: removed whole on cleanup. */
  jailDir: string;
  /** The chroot: what firecracker sees as `/`. */
  root: string;
}

/**
 * The jail of the VM whose directory is `dir`, for a firecracker binary named execName (the jailer
 * names the jail's parent after it). The VM dir's name is the VM id (`<vms_dir>/<id>`), so the
 * driver and the channel adapter find the same jail from the dir alone.
 */
export function jailLayout(chrootBase: string, dir: string, execName: string): JailLayout {
  const id = instanceId(basename(dir));
  const jailDir = join(chrootBase, execName, id);
  return { id, jailDir, root: join(jailDir, "root") };
}

/** The existing jail of a VM dir, whatever the firecracker binary was called when it started; undefined when none. */
export function findJail(chrootBase: string, dir: string): JailLayout | undefined {
  let names: string[];
  try {
    names = readdirSync(chrootBase);
  } catch {
    return undefined;
  }
  for (const name of names) {
    const layout = jailLayout(chrootBase, dir, name);
    if (existsSync(layout.root)) return layout;
  }
  return undefined;
}

/** The jail an API socket path lies in (`<chrootBase>/<exec>/<id>/root/fc.sock`), or undefined. */
export function jailOfSocket(chrootBase: string, socket: string): JailLayout | undefined {
  const root = dirname(socket);
  const jailDir = dirname(root);
  if (basename(root) !== "root" || dirname(dirname(jailDir)) !== chrootBase) return undefined;
  return { id: basename(jailDir), jailDir, root };
}

/** Names, relative to the jail root, of what the VM uses. Firecracker is told `/<name>`. */
export const IN_JAIL = {
  apiSocket: "fc.sock",
  vsockSocket: "vsock.sock",
  vmmLog: "firecracker.log",
  kernel: "vmlinux",
  initrd: "initrd",
  rootfs: "rootfs.ext4",
  workDisk: "work.ext4",
} as const;

/** cgroup v2 limits from the VM's size: `cpu.max` = vCPUs worth of time per period, `memory.max` = RAM plus overhead. */
export function cgroupLimits(vcpus: number, memoryMib: number): string[] {
  return [`cpu.max=${vcpus * CPU_PERIOD_US} ${CPU_PERIOD_US}`, `memory.max=${(memoryMib + MEMORY_OVERHEAD_MIB) * 1024 * 1024}`];
}

/**
 * The jailer's argv (without the jailer itself), as jailer.md defines it. No --daemonize: it would
 * send firecracker's stdout, the guest serial console, to /dev/null, and the detached spawn already
 * gives the process its own session. No --new-pid-ns: the jailer would fork and exit, while the
 * driver tracks the pid it spawned (pid + start time); without it the jailer execs in place.
 * The jailer itself passes --id to firecracker, so only --api-sock follows `--`.
 */
export function jailerArgv(o: {
  id: string;
  execFile: string;
  uid: number;
  gid: number;
  chrootBase: string;
  vcpus: number;
  memoryMib: number;
  parentCgroup: string;
}): string[] {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(o.id)) {
    throw new BangerError("VMM_FAILED", `jailer id ${JSON.stringify(o.id)} is not 1 to 64 alphanumerics and hyphens`, { hint: "this is a bug in banger" });
  }
  return [
    "--id",
    o.id,
    "--exec-file",
    o.execFile,
    "--uid",
    String(o.uid),
    "--gid",
    String(o.gid),
    "--chroot-base-dir",
    o.chrootBase,
    "--cgroup-version",
    "2",
    "--parent-cgroup",
    o.parentCgroup,
    ...cgroupLimits(o.vcpus, o.memoryMib).flatMap((c) => ["--cgroup", c]),
    "--",
    "--api-sock",
    `/${IN_JAIL.apiSocket}`,
  ];
}

/** Hard-link src to dst, or copy it when they are on different filesystems (read-only boot files only). */
async function linkOrCopy(src: string, dst: string, copyAllowed: boolean): Promise<void> {
  try {
    await link(src, dst);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (copyAllowed && (code === "EXDEV" || code === "EPERM")) return copyFile(src, dst);
    throw new BangerError("VMM_FAILED", `cannot hard-link ${src} into the jail at ${dst}: ${code ?? (e as Error).message}`, {
      hint: "the state_dir (VM dirs and the jail) must be one filesystem",
    });
  }
}

/**
 * Puts the VM's files in its jail before the jailer runs (the jailer keeps an existing root):
 * the disks and firecracker's log are hard links to the VM dir's files (same inode, already the
 * VMM user's, so writes land in the VM dir), kernel and initrd are linked or copied. jailedSpec()
 * names them as firecracker sees them.
 */
export async function populateJail(layout: JailLayout, spec: VmmSpec, vmmLog: string): Promise<void> {
  // The jailer chowns the root to the jailed uid; until then it is root's alone.
  await mkdir(layout.root, { mode: 0o700 });
  const at = (name: string) => join(layout.root, name);
  await linkOrCopy(spec.kernel, at(IN_JAIL.kernel), true);
  if (spec.initrd) await linkOrCopy(spec.initrd, at(IN_JAIL.initrd), true);
  await linkOrCopy(spec.rootfs, at(IN_JAIL.rootfs), false);
  await linkOrCopy(spec.workDisk, at(IN_JAIL.workDisk), false);
  await linkOrCopy(vmmLog, at(IN_JAIL.vmmLog), false);
}

/** The spec as a jailed firecracker sees it: every file at its fixed name in the chroot. */
export function jailedSpec(spec: VmmSpec): VmmSpec {
  return {
    ...spec,
    kernel: `/${IN_JAIL.kernel}`,
    initrd: spec.initrd ? `/${IN_JAIL.initrd}` : undefined,
    rootfs: `/${IN_JAIL.rootfs}`,
    workDisk: `/${IN_JAIL.workDisk}`,
  };
}

/**
 * Removes a VM's jail dir and its cgroup. The cgroup empties a moment after the process exits,
 * so EBUSY is retried briefly; a cgroup that stays busy is reported, not ignored.
 */
export async function removeJail(layout: JailLayout, cgroupDir: string): Promise<void> {
  await rm(layout.jailDir, { recursive: true, force: true });
  for (let i = 0; ; i++) {
    try {
      await rmdir(cgroupDir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY" || i >= 50) {
        throw new BangerError("VMM_FAILED", `cannot remove the VM's cgroup ${cgroupDir}: ${code ?? (e as Error).message}`, {
          hint: `a process may still be in it: see ${join(cgroupDir, "cgroup.procs")}`,
        });
      }
      await sleep(100);
    }
  }
}
