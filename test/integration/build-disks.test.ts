import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4BuildDisks } from "../../src/adapters/disk/build-disks.js";
import { Ext4Disks } from "../../src/adapters/disk/disks.js";
import { ExecRunner } from "../../src/adapters/exec/runner.js";
import { type BangerError } from "../../src/domain/errors.js";
import { BUILDER_IDENTITY } from "../../src/app/image-build.js";

const tools = ["mkfs.ext4", "debugfs", "resize2fs", "e2fsck", "dumpe2fs", "truncate"];
const missing = tools.filter((t) => {
  try {
    execFileSync("sh", ["-c", `command -v ${t}`], { stdio: "ignore" });
    return false;
  } catch {
    return true;
  }
});

const debugfs = (image: string, request: string) =>
  execFileSync("debugfs", ["-R", request, image], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });

describe.skipIf(missing.length > 0)(`Ext4BuildDisks with real e2fsprogs${missing.length ? ` (skipped: ${missing.join(", ")} not installed)` : ""}`, () => {
  let dir: string;
  const runner = new ExecRunner();
  const disks = new Ext4BuildDisks({ runner, disks: new Ext4Disks({ runner }) });
  const MIB = 1024 * 1024;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "banger-build-disk-"));
    const tree = join(dir, "tree");
    await mkdir(join(tree, "etc/ssh/banger"), { recursive: true });
    await writeFile(join(tree, "etc/ssh/ssh_host_ed25519_key"), "PRIVATE");
    await writeFile(join(tree, "etc/ssh/banger/authorized_keys"), "ssh-ed25519 AAAA builder");
    await writeFile(join(tree, "etc/machine-id"), "0123456789abcdef0123456789abcdef\n");
    await writeFile(join(tree, "etc/keep"), "kept");
    execFileSync("mkfs.ext4", ["-q", "-F", "-d", tree, join(dir, "fs.ext4"), "64M"]);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("grows a filesystem to the size asked for; fsck finds it clean", async () => {
    const img = join(dir, "fs.ext4");
    await disks.growTo(img, 128 * MIB);
    expect((await stat(img)).size).toBe(128 * MIB);
    const head = execFileSync("dumpe2fs", ["-h", img], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const blocks = Number(/^Block count:\s+(\d+)/m.exec(head)![1]) * Number(/^Block size:\s+(\d+)/m.exec(head)![1]);
    expect(blocks).toBe(128 * MIB);
    expect(await disks.check(img)).toBe("clean");
  });

  it("strips the builder's identity: keys and authorized_keys gone, machine-id empty, the rest kept", async () => {
    const img = join(dir, "fs.ext4");
    await disks.scrub(img, BUILDER_IDENTITY);
    const before = debugfs(img, "ls /etc");
    expect(before).toMatch(/keep/);
    expect(debugfs(img, "ls /etc/ssh")).not.toMatch(/ssh_host_ed25519_key/);
    expect(debugfs(img, "ls /etc/ssh/banger")).not.toMatch(/authorized_keys/);
    expect(debugfs(img, "cat /etc/machine-id")).toBe("");
    expect(debugfs(img, "stat /etc/machine-id")).toMatch(/Mode:\s+0444/);
    expect(debugfs(img, "cat /etc/keep")).toBe("kept");
  });

  it("shrinks a filesystem to its minimum and cuts the file to match", async () => {
    const img = join(dir, "fs.ext4");
    const bytes = await disks.shrinkToMin(img);
    expect(bytes).toBeLessThan(64 * MIB);
    expect((await stat(img)).size).toBe(bytes);
    expect(await disks.check(img)).toBe("clean");
    expect(debugfs(img, "cat /etc/keep")).toBe("kept");
  });

  it("a file that is not a filesystem fails the check with DISK_FAILED", async () => {
    const bad = join(dir, "bad.ext4");
    await writeFile(bad, Buffer.alloc(4 * MIB));
    const err = (await disks.check(bad).catch((e) => e)) as BangerError;
    expect(err.code).toBe("DISK_FAILED");
    expect(err.message).toMatch(/e2fsck -f -y .* exited (8|16)/);
  });
});
