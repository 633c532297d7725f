import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NodeFiles } from "../../src/adapters/fs/node-files.js";
import { checkInitrd, checkKernel, checkPlainFile } from "../../src/app/artifact-checks.js";
import { pinImageSources } from "../../src/app/image-sources.js";

const files = new NodeFiles({ copy: async () => undefined, sha256: async () => "" });
const dir = mkdtempSync(join(tmpdir(), "banger-art-"));

function elf(opts: { cls?: number; machine?: number; type?: number } = {}): string {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = opts.cls ?? 2;
  b.writeUInt16LE(opts.type ?? 2, 16);
  b.writeUInt16LE(opts.machine ?? 0x3e, 18);
  const p = join(dir, `elf-${Math.random()}`);
  writeFileSync(p, b);
  return p;
}

describe("artifact checks", () => {
  it("accepts an x86-64 ELF executable", async () => {
    await expect(checkKernel(files, elf())).resolves.toBeUndefined();
  });

  it("refuses a bzImage with a hint on extracting vmlinux", async () => {
    const b = Buffer.alloc(0x300);
    b.write("HdrS", 0x202, "latin1");
    const p = join(dir, "bzImage");
    writeFileSync(p, b);
    await expect(checkKernel(files, p)).rejects.toMatchObject({
      code: "INVALID_ARTIFACT",
      message: expect.stringContaining("bzImage"),
      hint: expect.stringContaining("vmlinux"),
    });
  });

  it("refuses non-ELF, 32-bit, non-x86 and non-executable ELF files", async () => {
    const txt = join(dir, "k.txt");
    writeFileSync(txt, "hello world, not a kernel at all");
    await expect(checkKernel(files, txt)).rejects.toThrow(/not an ELF/);
    await expect(checkKernel(files, elf({ cls: 1 }))).rejects.toThrow(/not x86-64/);
    await expect(checkKernel(files, elf({ machine: 0xb7 }))).rejects.toThrow(/not x86-64/);
    await expect(checkKernel(files, elf({ type: 1 }))).rejects.toThrow(/not an executable/);
  });

  it("checks files exist, are regular and non-empty", async () => {
    const plain = async (role: "rootfs" | "kernel", path: string) => {
      const pinned = await pinImageSources(files, join(dir, "state"), [[role, path]]);
      try {
        return checkPlainFile(role, path, pinned.get(role)!.info);
      } finally {
        await pinned.get(role)!.close();
      }
    };
    await expect(plain("rootfs", join(dir, "missing"))).rejects.toThrow(/does not exist/);
    mkdirSync(join(dir, "d"));
    await expect(plain("rootfs", join(dir, "d"))).rejects.toThrow(/not a regular file/);
    writeFileSync(join(dir, "empty"), "");
    await expect(plain("kernel", join(dir, "empty"))).rejects.toThrow(/--kernel .* is empty/);
  });

  it("recognises initramfs formats", async () => {
    const gz = join(dir, "i.gz");
    writeFileSync(gz, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]));
    await expect(checkInitrd(files, gz)).resolves.toBeUndefined();
    const cpio = join(dir, "i.cpio");
    writeFileSync(cpio, "070701000000");
    await expect(checkInitrd(files, cpio)).resolves.toBeUndefined();
    const bad = join(dir, "i.bad");
    writeFileSync(bad, "garbage!");
    await expect(checkInitrd(files, bad)).rejects.toThrow(/not a cpio/);
  });
});
