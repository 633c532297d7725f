import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { BangerError, isCode } from "../../domain/errors.js";
import type { Disks, InjectedFile } from "../../ports/disks.js";
import type { Runner } from "../../ports/runner.js";
import { debugfsInjectScript, checkInjected, injectErrors, validateGuestPath } from "./debugfs.js";
import { copyFileReflink } from "./files.js";
import { ext4Problem } from "./superblock.js";

export interface Ext4DisksOptions {
  runner: Runner;
  log?: Logger;
}

const COPY_TIMEOUT_MS = 10 * 60_000;
const FS_TOOL_TIMEOUT_MS = 5 * 60_000;
const DEBUGFS_TIMEOUT_MS = 60_000;
const GIB = 1024 ** 3;

function diskError(message: string, cause?: unknown, hint = "check free space (`df -h`) in the state directory and that e2fsprogs is installed"): BangerError {
  if (isCode(cause, "TIMEOUT")) return cause;
  const detail = cause instanceof Error ? `: ${cause.message}` : "";
  return new BangerError("DISK_FAILED", `${message}${detail}`, { hint, cause });
}

/** ext4 images handled with coreutils and e2fsprogs only: no mounts, no loop devices. */
export class Ext4Disks implements Disks {
  constructor(private readonly opts: Ext4DisksOptions) {}

  private copy(src: string, dst: string): Promise<void> {
    return copyFileReflink(src, dst, COPY_TIMEOUT_MS, this.opts.runner);
  }

  async cloneRootfs(src: string, dst: string): Promise<void> {
    try {
      await this.copy(src, dst);
    } catch (e) {
      throw diskError(`cannot clone rootfs ${src} to ${dst}`, e);
    }
  }

  async makeWorkDisk(dst: string, sizeGib: number, seed?: string): Promise<void> {
    if (!Number.isInteger(sizeGib) || sizeGib < 1) throw new BangerError("BAD_REQUEST", `work disk size must be a whole number of GiB >= 1, got ${sizeGib}`);
    const run = this.opts.runner.run.bind(this.opts.runner);
    if (seed) {
      const seedSize = (
        await stat(seed).catch((e: unknown) => {
          throw diskError(`work seed ${seed} is unreadable`, e, "re-import the image");
        })
      ).size;
      if (seedSize > sizeGib * GIB) {
        throw new BangerError("DISK_FAILED", `work seed ${seed} is ${(seedSize / GIB).toFixed(1)} GiB, larger than the requested ${sizeGib} GiB work disk`, {
          hint: `ask for at least ${Math.ceil(seedSize / GIB)} GiB (--disk or work_disk_gib)`,
        });
      }
      try {
        await this.copy(seed, dst);
        await run("truncate", ["-s", `${sizeGib}G`, "--", dst], { timeoutMs: FS_TOOL_TIMEOUT_MS });
        await this.grow(dst);
      } catch (e) {
        await rm(dst, { force: true });
        throw diskError(`cannot make work disk ${dst} from seed ${seed}`, e);
      }
      return;
    }
    try {
      await rm(dst, { force: true });
      await run("truncate", ["-s", `${sizeGib}G`, "--", dst], { timeoutMs: FS_TOOL_TIMEOUT_MS });
      // Lazy init: inode tables and journal are zeroed by the guest kernel later, so mkfs stays instant.
      await run("mkfs.ext4", ["-q", "-F", "-L", "work", "-E", "lazy_itable_init=1,lazy_journal_init=1", dst], { timeoutMs: FS_TOOL_TIMEOUT_MS });
    } catch (e) {
      await rm(dst, { force: true });
      throw diskError(`cannot make empty work disk ${dst}`, e);
    }
  }

  /**
   * resize2fs refuses a filesystem that was mounted since its last check; a
   * seed fresh from `mkfs.ext4 -d` never was, so fsck only runs when asked for.
   */
  private async grow(image: string): Promise<void> {
    const run = this.opts.runner.run.bind(this.opts.runner);
    const first = await run("resize2fs", [image], { timeoutMs: FS_TOOL_TIMEOUT_MS, allowFailure: true });
    if (first.code === 0) return;
    if (!/e2fsck -f/.test(first.stderr + first.stdout)) {
      throw new BangerError(
        "DISK_FAILED",
        `resize2fs ${image} exited ${first.code}: ${(first.stderr || first.stdout).trim().split("\n").slice(-2).join(" | ")}`,
      );
    }
    this.opts.log?.debug({ image }, "resize2fs wants a fresh fsck first");
    const fsck = await run("e2fsck", ["-f", "-y", image], { timeoutMs: FS_TOOL_TIMEOUT_MS, allowFailure: true });
    // 0: clean, 1: errors fixed; anything else leaves the filesystem unusable.
    if (fsck.code > 1)
      throw new BangerError("DISK_FAILED", `e2fsck -f -y ${image} exited ${fsck.code}: ${fsck.stdout.trim().split("\n").slice(-2).join(" | ")}`);
    await run("resize2fs", [image], { timeoutMs: FS_TOOL_TIMEOUT_MS });
  }

  async hasFile(image: string, path: string): Promise<boolean> {
    validateGuestPath(path);
    // Read-only debugfs: "stat" prints the inode's type, or an error when the path does not resolve.
    const res = await this.opts.runner.run("debugfs", ["-R", `stat "${path}"`, image], { timeoutMs: DEBUGFS_TIMEOUT_MS, allowFailure: true });
    return /Type: regular/.test(res.stdout);
  }

  async inject(image: string, given: InjectedFile[]): Promise<void> {
    if (given.length === 0) return;
    for (const f of given) validateGuestPath(f.path);
    // The same path twice: the last one wins, as if written in order.
    const files = [...new Map(given.map((f) => [f.path, f])).values()];
    const tmp = await mkdtemp(join(tmpdir(), "banger-inject-"));
    try {
      const sources = await Promise.all(
        files.map(async (f, i) => {
          const p = join(tmp, `f${i}`);
          await writeFile(p, f.content);
          return p;
        }),
      );
      const script = join(tmp, "commands");
      await writeFile(script, debugfsInjectScript(files, sources));
      const env = { ...process.env, DEBUGFS_PAGER: "__none__" };
      const res = await this.opts.runner.run("debugfs", ["-w", "-f", script, image], { timeoutMs: DEBUGFS_TIMEOUT_MS, env, allowFailure: true });
      // debugfs exits 0 even when individual commands fail, so read what it said.
      const errors = injectErrors(res.stderr);
      if (res.code !== 0 || errors.length > 0) {
        throw new BangerError("DISK_FAILED", `debugfs could not write into ${image}: ${errors.slice(0, 3).join(" | ") || `exit ${res.code}`}`, {
          hint: "check that the image is ext4 and not in use by a running VM",
        });
      }
      await checkInjected(this.opts.runner, image, files, tmp, env);
    } catch (e) {
      throw isCode(e, "DISK_FAILED") ? e : diskError(`cannot inject files into ${image}`, e);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  ext4Problem(path: string): Promise<string | undefined> {
    return ext4Problem(path);
  }
}
