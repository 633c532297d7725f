import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { debugfsInjectScript, injectErrors, parseStats, validateGuestPath } from "../../src/adapters/disk/debugfs.js";
import { ext4Problem } from "../../src/adapters/disk/superblock.js";

/** A file with just enough superblock to be judged: magic, block size, block count. */
function craft(opts: { size: number; magic?: number; logBlock?: number; blocks?: number; blocksHi?: number; bit64?: boolean }): Buffer {
  const buf = Buffer.alloc(opts.size);
  const sb = 1024;
  buf.writeUInt32LE(opts.blocks ?? 1, sb + 4);
  buf.writeUInt32LE(opts.logBlock ?? 2, sb + 24);
  buf.writeUInt16LE(opts.magic ?? 0xef53, sb + 56);
  if (opts.bit64) {
    buf.writeUInt32LE(0x80, sb + 96);
    buf.writeUInt32LE(opts.blocksHi ?? 0, sb + 0x150);
  }
  return buf;
}

describe("ext4Problem", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "banger-sb-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, content: Buffer): Promise<string> {
    const p = join(dir, name);
    await writeFile(p, content);
    return p;
  }

  it("accepts a superblock whose filesystem fits in the file", async () => {
    expect(await ext4Problem(await file("ok.img", craft({ size: 8192, blocks: 2, logBlock: 2 })))).toBeUndefined();
  });

  it("names a missing file, a directory and an empty file", async () => {
    expect(await ext4Problem(join(dir, "absent.img"))).toBe("file does not exist");
    const sub = join(dir, "sub");
    await mkdir(sub);
    expect(await ext4Problem(sub)).toBe("not a regular file");
    expect(await ext4Problem(await file("empty.img", Buffer.alloc(0)))).toBe("empty");
  });

  it("rejects files too small to hold a superblock", async () => {
    expect(await ext4Problem(await file("tiny.img", Buffer.alloc(1500)))).toMatch(/too small \(1500 bytes\)/);
  });

  it("rejects a wrong magic and shows it", async () => {
    expect(await ext4Problem(await file("bad.img", craft({ size: 4096, magic: 0x1234 })))).toMatch(/magic 0x1234/);
  });

  it("rejects an impossible block size", async () => {
    expect(await ext4Problem(await file("bs.img", craft({ size: 4096, logBlock: 30 })))).toMatch(/block size/);
  });

  it("detects a truncated image, including the 64-bit high block count", async () => {
    expect(await ext4Problem(await file("trunc.img", craft({ size: 8192, blocks: 100, logBlock: 2 })))).toMatch(/claims 409600 bytes but the file has 8192/);
    expect(await ext4Problem(await file("hi.img", craft({ size: 8192, blocks: 1, logBlock: 2, bit64: true, blocksHi: 1 })))).toMatch(/claims/);
  });
});

describe("debugfs helpers", () => {
  it("creates parents once, removes before writing, forces mode and owner", () => {
    const script = debugfsInjectScript(
      [
        { path: "/etc/ssh/a", content: "x", mode: 0o600 },
        { path: "/etc/ssh/b", content: "y", mode: 0o4755 },
      ],
      ["/tmp/s0", "/tmp/s1"],
    );
    expect(script.split("\n").filter(Boolean)).toEqual([
      'mkdir "/etc"',
      'mkdir "/etc/ssh"',
      'rm "/etc/ssh/a"',
      'write "/tmp/s0" "/etc/ssh/a"',
      'set_inode_field "/etc/ssh/a" mode 0100600',
      'set_inode_field "/etc/ssh/a" uid 0',
      'set_inode_field "/etc/ssh/a" gid 0',
      'rm "/etc/ssh/b"',
      'write "/tmp/s1" "/etc/ssh/b"',
      'set_inode_field "/etc/ssh/b" mode 0104755',
      'set_inode_field "/etc/ssh/b" uid 0',
      'set_inode_field "/etc/ssh/b" gid 0',
    ]);
  });

  it("ignores only the expected noise on stderr", () => {
    const stderr = [
      "debugfs 1.47.0 (5-Feb-2023)",
      'ext2fs_mkdir: Ext2 directory already exists while creating directory "etc"',
      "mkdir: Ext2 directory already exists ",
      "rm: File not found by ext2_lookup while trying to resolve filename",
      "write: File not found by ext2_lookup ",
    ].join("\n");
    expect(injectErrors(stderr)).toEqual(["write: File not found by ext2_lookup"]);
  });

  it("parses stat transcripts per path", () => {
    const out = [
      'debugfs: stat "/etc/a b"',
      "Inode: 16   Type: regular    Mode:  0600   Flags: 0x80000",
      "User:     0   Group:     0   Project:     0   Size: 4",
      'debugfs: dump "/etc/a b" "/tmp/x"',
      'debugfs: stat "/root"',
      "Inode: 12   Type: directory    Mode:  0700   Flags: 0x80000",
      "User:  1000   Group:   100   Project:     0   Size: 4096",
    ].join("\n");
    const st = parseStats(out);
    expect(st.get("/etc/a b")).toEqual({ type: "regular", mode: 0o600, uid: 0, gid: 0, size: 4 });
    expect(st.get("/root")).toEqual({ type: "directory", mode: 0o700, uid: 1000, gid: 100, size: 4096 });
  });

  it("refuses guest paths debugfs cannot quote or that escape normalisation", () => {
    for (const bad of ["etc/x", "/", "/etc/", '/etc/"x', "/etc/../x", "/etc/\nx", "/a\\b"]) {
      expect(() => validateGuestPath(bad), bad).toThrow(/guest paths must be absolute/);
    }
    expect(() => validateGuestPath("/etc/with space")).not.toThrow();
  });
});
