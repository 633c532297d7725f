import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
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
