import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NodeFiles } from "../../src/adapters/fs/node-files.js";
import { pinImageSources } from "../../src/app/image-sources.js";

const files = new NodeFiles({ copy: async () => undefined, sha256: async () => "" });
const dir = mkdtempSync(join(tmpdir(), "banger-src-"));
const state = join(dir, "state");
mkdirSync(join(state, "vms", "x"), { recursive: true });
writeFileSync(join(state, "vms", "x", "rootfs.ext4"), "secret disk");
writeFileSync(join(dir, "ok.ext4"), "fine");
// The state dir reached through a symlink of its own.
symlinkSync(state, join(dir, "state-link"));
symlinkSync(join(state, "vms", "x", "rootfs.ext4"), join(dir, "innocent.ext4"));
symlinkSync(join(dir, "ok.ext4"), join(dir, "good-link.ext4"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const pin = (path: string) => pinImageSources(files, state, [["rootfs", path]]);

describe("image register sources", () => {
  it("refuses relative paths", async () => {
    await expect(pin("ok.ext4")).rejects.toMatchObject({
      code: "PATH_NOT_ALLOWED",
      message: expect.stringMatching(/must be an absolute path/),
      field: "rootfs",
    });
  });

  it("refuses paths into the state dir, spelled directly, with .. or through a symlinked parent", async () => {
    for (const p of [join(state, "vms/x/rootfs.ext4"), `${dir}/other/../state/vms/x/rootfs.ext4`, join(dir, "state-link/vms/x/rootfs.ext4")]) {
      await expect(pin(p)).rejects.toMatchObject({ code: "PATH_NOT_ALLOWED", message: expect.stringMatching(/state directory/) });
    }
  });

  it("refuses a symlink whose target is in the state dir, naming where it led", async () => {
    await expect(pin(join(dir, "innocent.ext4"))).rejects.toThrow(/resolves to .*state\/vms\/x\/rootfs\.ext4, inside banger's state directory/);
  });

  it("follows a symlink elsewhere and reads the pinned inode, even after the path is swapped", async () => {
    const pinned = await pin(join(dir, "good-link.ext4"));
    const f = pinned.get("rootfs")!;
    try {
      expect(f.realPath).toBe(join(dir, "ok.ext4"));
      rmSync(join(dir, "ok.ext4"));
      symlinkSync(join(state, "vms", "x", "rootfs.ext4"), join(dir, "ok.ext4"));
      // The descriptor still names the vetted file, not the state-dir disk now behind the path.
      expect(readFileSync(f.readPath, "utf8")).toBe("fine");
    } finally {
      await f.close();
    }
  });

  it("closes what it opened when a later file is refused", async () => {
    writeFileSync(join(dir, "k"), "kernel");
    const before = readdirSync(`/proc/${process.pid}/fd`).length;
    await expect(
      pinImageSources(files, state, [
        ["kernel", join(dir, "k")],
        ["rootfs", join(state, "vms/x/rootfs.ext4")],
      ]),
    ).rejects.toMatchObject({ code: "PATH_NOT_ALLOWED" });
    expect(readdirSync(`/proc/${process.pid}/fd`).length).toBe(before);
  });
});
