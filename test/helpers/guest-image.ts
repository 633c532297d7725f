import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { REPO } from "./daemon.js";

export interface BuiltImage {
  dir: string;
  name: string;
  kernel: string;
  initrd: string;
  rootfs: string;
  workSeed: string;
}

/** The newest `make image-debian` output under build/images/debian, if any. */
export function builtDebianImage(): BuiltImage | undefined {
  return builtImage("debian");
}

/** The newest `make image-<os>` output under build/images/<os> (debian, alpine), if any. */
export function builtImage(os: string): BuiltImage | undefined {
  const root = join(REPO, "build/images", os);
  if (!existsSync(root)) return undefined;
  const dirs = readdirSync(root)
    .map((n) => join(root, n))
    .filter((d) => existsSync(join(d, "manifest.json")) && existsSync(join(d, "rootfs.ext4")))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return dirs[0] === undefined ? undefined : imageAt(dirs[0]);
}

/** The boot set an image build writes into its output directory. */
export function imageAt(dir: string): BuiltImage {
  return {
    dir,
    name: dir.split("/").pop()!,
    kernel: join(dir, "vmlinux"),
    initrd: join(dir, "initramfs.cpio.gz"),
    rootfs: join(dir, "rootfs.ext4"),
    workSeed: join(dir, "work-seed.ext4"),
  };
}

/** Why a real guest cannot boot here, or undefined. */
export function guestSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (namespaces, TAP devices)";
  const q = spawnSync("qemu-system-x86_64", ["--version"], { timeout: 10_000 });
  if (q.error || q.status !== 0) return "needs qemu-system-x86_64 (apt-get install qemu-system-x86)";
  if (!builtDebianImage()) return "needs the Debian guest image: run `make image-debian` (CI does)";
  return undefined;
}

/** `image register` argv for a built image; `services: false` registers SSH only (opencode's TCG cold start costs minutes). */
export function registerArgs(img: BuiltImage, name: string, opts: { services?: boolean; os?: string } = {}): string[] {
  return [
    "image",
    "register",
    "--name",
    name,
    "--kernel",
    img.kernel,
    "--initrd",
    img.initrd,
    "--rootfs",
    img.rootfs,
    "--work-seed",
    img.workSeed,
    "--os",
    opts.os ?? "debian",
    ...(opts.services === false ? [] : ["--service", "opencode:4096"]),
  ];
}
