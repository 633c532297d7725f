import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A file with a valid x86-64 ELF executable header: enough for registration checks, not for booting. */
export function fakeElfKernel(dir: string, name = "vmlinux"): string {
  const b = Buffer.alloc(4096);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = 2;
  b[5] = 1;
  b.writeUInt16LE(2, 16);
  b.writeUInt16LE(0x3e, 18);
  const p = join(dir, name);
  writeFileSync(p, b);
  return p;
}

/** A file that looks like a bzImage (boot protocol "HdrS" magic at 0x202). */
export function fakeBzImage(dir: string): string {
  const b = Buffer.alloc(4096);
  b.write("HdrS", 0x202, "latin1");
  const p = join(dir, "bzImage");
  writeFileSync(p, b);
  return p;
}

/** A real, small ext4 made by mkfs.ext4 -d from a tiny tree. */
export function realExt4(dir: string, name: string, files: Record<string, string> = { "hello.txt": "hi\n" }, sizeMib = 8): string {
  const tree = join(dir, `${name}.tree`);
  mkdirSync(tree, { recursive: true });
  for (const [f, content] of Object.entries(files)) {
    mkdirSync(join(tree, f, ".."), { recursive: true });
    writeFileSync(join(tree, f), content);
  }
  const p = join(dir, name);
  execFileSync("truncate", ["-s", `${sizeMib}M`, p]);
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", tree, p], { timeout: 30_000 });
  return p;
}

export function fakeInitrd(dir: string): string {
  const p = join(dir, "initrd.cpio.gz");
  writeFileSync(p, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  return p;
}

/**
 * A gzip'd newc initramfs whose /init is `init` (run by /bin/busybox sh), for boots that need a
 * scripted guest but no disk. Undefined when busybox or cpio is missing.
 */
export function busyboxInitramfs(dir: string, init: string): string | undefined {
  const busybox = "/bin/busybox";
  if (!existsSync(busybox) || spawnSync("cpio", ["--version"], { stdio: "ignore", timeout: 10_000 }).status !== 0) return undefined;
  const root = join(dir, "initramfs");
  for (const d of ["bin", "dev", "proc", "sys"]) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(busybox, join(root, "bin/busybox"));
  chmodSync(join(root, "bin/busybox"), 0o755);
  writeFileSync(
    join(root, "init"),
    `#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n${init}`,
  );
  chmodSync(join(root, "init"), 0o755);
  const out = join(dir, "initramfs.cpio.gz");
  const r = spawnSync("sh", ["-c", `cd "${root}" && find . | cpio -o -H newc --quiet | gzip -1 > "${out}"`], { timeout: 60_000 });
  if (r.status !== 0) throw new Error(`initramfs build failed: ${r.stderr}`);
  return out;
}

/** `image register` argv for an image of stand-ins (for the fake Firecracker, which boots nothing), with a real ext4 rootfs and seed. */
export function fakeImageArgs(dir: string, name: string): string[] {
  const seed = realExt4(dir, "seed.ext4", { ".bashrc": "# seed\n" });
  return ["image", "register", "--name", name, "--kernel", fakeElfKernel(dir), "--rootfs", realExt4(dir, "rootfs.ext4"), "--work-seed", seed];
}
