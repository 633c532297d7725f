import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NodeFiles } from "../../src/adapters/fs/node-files.js";

describe("NodeFiles: the app's file port, errors classified at the edge", () => {
  const dir = mkdtempSync(join(tmpdir(), "banger-files-"));
  const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
  const files = new NodeFiles({
    copy: async () => {
      throw enospc;
    },
    sha256: async () => "0".repeat(64),
  });

  it("answers a missing directory or file without an error", async () => {
    expect(await files.list(join(dir, "nope"))).toEqual([]);
    expect(await files.stat(join(dir, "nope"))).toBeUndefined();
    await expect(files.remove(join(dir, "nope"))).resolves.toBeUndefined();
  });

  it("reports sizes and allocated blocks", async () => {
    const p = join(dir, "f");
    writeFileSync(p, Buffer.alloc(10_000, 1));
    const st = (await files.stat(p))!;
    expect(st).toMatchObject({ size: 10_000, isFile: true, isDirectory: false });
    expect(st.allocatedBytes).toBeGreaterThanOrEqual(10_000);
    expect(await files.readHead(p, 4)).toEqual(Buffer.from([1, 1, 1, 1]));
  });

  it("turns a full disk into DISK_FAILED naming where to free space, not INTERNAL", async () => {
    const err = await files.copy("/src/rootfs.ext4", join(dir, "vm", "rootfs.ext4")).catch((e) => e);
    expect(err).toMatchObject({ code: "DISK_FAILED" });
    expect(err.message).toMatch(/no space left .*copying \/src\/rootfs\.ext4/);
    expect(err.hint).toContain(join(dir, "vm", "rootfs.ext4"));
  });

  it("names the path of a rename whose source vanished", async () => {
    const err = await files.rename(join(dir, "gone"), join(dir, "target")).catch((e) => e);
    expect(err).toMatchObject({ code: "DISK_FAILED", message: expect.stringMatching(/missing/) });
  });
});
