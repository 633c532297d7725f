import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BangerError } from "../../domain/errors.js";
import type { BuildDisks } from "../../ports/build-disks.js";
import type { Disks } from "../../ports/disks.js";
import type { Runner } from "../../ports/runner.js";
import { injectErrors, validateGuestPath } from "./debugfs.js";

const FS_TOOL_TIMEOUT_MS = 10 * 60_000;
const DEBUGFS_TIMEOUT_MS = 60_000;

const lastLines = (s: string, n = 3) => s.trim().split("\n").slice(-n).join(" | ");

/** e2fsprogs on image files: grow before a build boots, check and shrink after it powered off. No mounts. */
export class Ext4BuildDisks implements BuildDisks {
  constructor(private readonly opts: { runner: Runner; disks: Disks }) {}

  private run(cmd: string, args: string[], allowFailure = false) {
    return this.opts.runner.run(cmd, args, { timeoutMs: FS_TOOL_TIMEOUT_MS, allowFailure });
  }

  async size(image: string): Promise<number> {
    return (await stat(image)).size;
  }

  async growTo(image: string, bytes: number): Promise<void> {
    await this.check(image); // resize2fs wants a freshly checked filesystem
    await this.run("truncate", ["-s", String(bytes), "--", image]);
    const r = await this.run("resize2fs", [image], true);
    if (r.code !== 0) throw new BangerError("DISK_FAILED", `resize2fs ${image} exited ${r.code}: ${lastLines(r.stderr || r.stdout)}`);
  }

  async check(image: string): Promise<string> {
    const r = await this.run("e2fsck", ["-f", "-y", image], true);
    // 0: clean; 1: errors corrected; 2: corrected, reboot wanted (meaningless for an image file); 4 and up: left broken.
    if (r.code >= 4 || r.code < 0) {
      throw new BangerError("DISK_FAILED", `e2fsck -f -y ${image} exited ${r.code}: ${lastLines(r.stdout || r.stderr)}`, {
        hint: "the guest did not leave a consistent filesystem; rerun the build",
      });
    }
    return r.code === 0 ? "clean" : "errors corrected";
  }

  async shrinkToMin(image: string): Promise<number> {
    await this.check(image);
    const r = await this.run("resize2fs", ["-M", image], true);
    if (r.code !== 0) throw new BangerError("DISK_FAILED", `resize2fs -M ${image} exited ${r.code}: ${lastLines(r.stderr || r.stdout)}`);
    const head = await this.run("dumpe2fs", ["-h", image]);
    const count = /^Block count:\s+(\d+)/m.exec(head.stdout);
    const size = /^Block size:\s+(\d+)/m.exec(head.stdout);
    if (!count || !size) throw new BangerError("DISK_FAILED", `dumpe2fs -h ${image} did not report the block count and size`);
    const bytes = Number(count[1]) * Number(size[1]);
    // The file keeps its old length after resize2fs; cut it to the filesystem so the seed is small on disk and on copy.
    await this.run("truncate", ["-s", String(bytes), "--", image]);
    return bytes;
  }

  async scrub(image: string, opts: { remove: string[]; empty: { path: string; mode: number }[] }): Promise<void> {
    for (const p of opts.remove) validateGuestPath(p);
    if (opts.remove.length > 0) {
      const tmp = await mkdtemp(join(tmpdir(), "banger-scrub-"));
      try {
        const script = join(tmp, "commands");
        await writeFile(script, opts.remove.map((p) => `rm "${p}"`).join("\n") + "\n");
        const env = { ...process.env, DEBUGFS_PAGER: "__none__" };
        const r = await this.opts.runner.run("debugfs", ["-w", "-f", script, image], { timeoutMs: DEBUGFS_TIMEOUT_MS, env, allowFailure: true });
        const errors = injectErrors(r.stderr);
        if (r.code !== 0 || errors.length > 0) {
          throw new BangerError("DISK_FAILED", `debugfs could not remove files from ${image}: ${errors.slice(0, 3).join(" | ") || `exit ${r.code}`}`);
        }
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    }
    // Emptied, not removed: e.g. an empty /etc/machine-id is what makes systemd generate one per VM.
    if (opts.empty.length > 0)
      await this.opts.disks.inject(
        image,
        opts.empty.map((e) => ({ path: e.path, content: "", mode: e.mode })),
      );
  }
}
