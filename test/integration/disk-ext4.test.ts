import { execFileSync } from "node:child_process";
import { link, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Disks } from "../../src/adapters/disk/disks.js";
import { copyFileReflink, sha256File } from "../../src/adapters/disk/files.js";
import { ExecRunner } from "../../src/adapters/exec/runner.js";
import { BangerError } from "../../src/domain/errors.js";

function have(tool: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const tools = ["mkfs.ext4", "debugfs", "resize2fs", "e2fsck", "dumpe2fs", "truncate"];
const missing = tools.filter((t) => !have(t));
const reason = missing.length ? ` (skipped: ${missing.join(", ")} not installed)` : "";

function debugfs(image: string, request: string): string {
  return execFileSync("debugfs", ["-R", request, image], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
}

function blockInfo(image: string): { count: number; size: number } {
  const out = execFileSync("dumpe2fs", ["-h", image], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 30_000 });
  return { count: Number(/^Block count:\s+(\d+)/m.exec(out)![1]), size: Number(/^Block size:\s+(\d+)/m.exec(out)![1]) };
}

describe.skipIf(missing.length > 0)(`Ext4Disks with real e2fsprogs${reason}`, () => {
  let dir: string;
  let seed: string;
  const disks = new Ext4Disks({ runner: new ExecRunner() });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "banger-disk-"));
    const tree = join(dir, "tree");
    await mkdir(join(tree, "root", "project"), { recursive: true });
    await writeFile(join(tree, "root", "project", "README"), "seed survives the grow\n");
    seed = join(dir, "seed.ext4");
    execFileSync("truncate", ["-s", "64M", seed]);
    execFileSync("mkfs.ext4", ["-q", "-F", "-b", "4096", "-L", "work", "-d", tree, seed], { timeout: 60_000 });
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("clones a rootfs sparsely with identical content", async () => {
    const dst = join(dir, "clone.ext4");
    await disks.cloneRootfs(seed, dst);
    expect(await sha256File(dst)).toBe(await sha256File(seed));
    const st = await stat(dst);
    expect(st.size).toBe((await stat(seed)).size);
    // Holes stayed holes: far fewer 512-byte blocks allocated than the apparent size.
    expect(st.blocks * 512).toBeLessThan(st.size);
  });

  it("reports a missing clone source as DISK_FAILED", async () => {
    const err = await disks.cloneRootfs(join(dir, "nope.ext4"), join(dir, "x.ext4")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BangerError);
    expect((err as BangerError).code).toBe("DISK_FAILED");
    expect((err as BangerError).hint).toBeTruthy();
  });

  it("copyFileReflink (the one copy, also behind cloneRootfs) replaces dst with a new file and maps failures", async () => {
    const dst = join(dir, "copy.ext4");
    await writeFile(dst, "old content a VM may still have open");
    // A second name for the old file stands in for a VMM holding it open: it must keep the old bytes.
    await link(dst, `${dst}.held`);
    await copyFileReflink(seed, dst);
    expect(await sha256File(dst)).toBe(await sha256File(seed));
    expect(await readFile(`${dst}.held`, "utf8")).toBe("old content a VM may still have open");
    expect(await copyFileReflink(join(dir, "nope"), dst).catch((e: unknown) => e)).toMatchObject({
      code: "DISK_FAILED",
      message: expect.stringMatching(/cannot copy .*nope/),
    });
    const slow = {
      run: async () => {
        throw new BangerError("TIMEOUT", "cp did not finish");
      },
    };
    expect(await copyFileReflink(seed, dst, 5, slow).catch((e: unknown) => e)).toMatchObject({
      code: "TIMEOUT",
      message: expect.stringMatching(/within 5 ms/),
    });
  });

  it("grows a seeded work disk to the requested size and keeps the seed's files", async () => {
    const dst = join(dir, "work-seeded.ext4");
    await disks.makeWorkDisk(dst, 2, seed);
    expect((await stat(dst)).size).toBe(2 * 1024 ** 3);
    const { count, size } = blockInfo(dst);
    expect(count * size).toBe(2 * 1024 ** 3);
    expect(debugfs(dst, "cat /root/project/README")).toBe("seed survives the grow\n");
    // The result must be a clean filesystem, not just a bigger file.
    execFileSync("e2fsck", ["-fn", dst], { stdio: "ignore", timeout: 60_000 });
  });

  it("grows a seed that resize2fs would refuse until it is checked (mounted since last fsck)", async () => {
    const used = join(dir, "used-seed.ext4");
    await copyFileReflink(seed, used);
    // Simulate a seed that was mounted after its last check: mtime later than lastcheck.
    execFileSync("debugfs", ["-w", "-R", "ssv mtime 20300101", used], { stdio: "ignore", timeout: 30_000 });
    const dst = join(dir, "work-used.ext4");
    await disks.makeWorkDisk(dst, 1, used);
    const { count, size } = blockInfo(dst);
    expect(count * size).toBe(1024 ** 3);
    expect(debugfs(dst, "cat /root/project/README")).toBe("seed survives the grow\n");
  });

  it("refuses a seed larger than the requested disk", async () => {
    const big = join(dir, "big-seed.ext4");
    execFileSync("truncate", ["-s", "3G", big]);
    const err = await disks.makeWorkDisk(join(dir, "small.ext4"), 1, big).catch((e: unknown) => e);
    expect((err as BangerError).code).toBe("DISK_FAILED");
    expect((err as BangerError).hint).toMatch(/at least 3 GiB/);
  });

  it("makes an empty ext4 work disk labelled work", async () => {
    const dst = join(dir, "work-empty.ext4");
    await disks.makeWorkDisk(dst, 3);
    const { count, size } = blockInfo(dst);
    expect(count * size).toBe(3 * 1024 ** 3);
    const header = execFileSync("dumpe2fs", ["-h", dst], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    expect(header).toMatch(/^Filesystem volume name:\s+work$/m);
    expect(await disks.ext4Problem(dst)).toBeUndefined();
  });

  it("injects files with parents, replaces existing ones and sets mode and owner", async () => {
    const img = join(dir, "inject.ext4");
    await disks.cloneRootfs(seed, img);
    const key = Buffer.from([0, 1, 2, 255, 10, 13]);
    await disks.inject(img, [
      { path: "/etc/ssh/ssh_host_ed25519_key", content: key, mode: 0o600 },
      { path: "/etc/ssh/sshd_config.d/banger.conf", content: "PermitRootLogin prohibit-password\n", mode: 0o644 },
      { path: "/root/project/README", content: "replaced\n", mode: 0o640 },
    ]);
    // Second injection over existing files must replace, not fail.
    await disks.inject(img, [
      { path: "/etc/hostname", content: "vm-a\n", mode: 0o644 },
      { path: "/etc/hostname", content: "vm-b\n", mode: 0o600 },
    ]);

    expect(debugfs(img, "cat /root/project/README")).toBe("replaced\n");
    expect(debugfs(img, "cat /etc/hostname")).toBe("vm-b\n");
    const st = debugfs(img, "stat /etc/ssh/ssh_host_ed25519_key");
    expect(st).toMatch(/Type: regular\s+Mode:\s+0600/);
    expect(st).toMatch(/User:\s+0\s+Group:\s+0/);
    expect(st).toMatch(/Size: 6\b/);
    expect(debugfs(img, "stat /root/project/README")).toMatch(/Mode:\s+0640/);
    expect(debugfs(img, "stat /etc/ssh/sshd_config.d")).toMatch(/Type: directory/);
    execFileSync("e2fsck", ["-fn", img], { stdio: "ignore", timeout: 60_000 });
  });

  it("fails injection into a non-ext4 file with DISK_FAILED instead of silently succeeding", async () => {
    const junk = join(dir, "junk.img");
    await writeFile(junk, Buffer.alloc(1 << 20, 0x41));
    const err = await disks.inject(junk, [{ path: "/etc/x", content: "x", mode: 0o644 }]).catch((e: unknown) => e);
    expect((err as BangerError).code).toBe("DISK_FAILED");
  });

  it("fails injection when a parent is a regular file", async () => {
    const img = join(dir, "inject2.ext4");
    await disks.cloneRootfs(seed, img);
    const err = await disks.inject(img, [{ path: "/root/project/README/oops", content: "x", mode: 0o644 }]).catch((e: unknown) => e);
    expect((err as BangerError).code).toBe("DISK_FAILED");
  });
});
