import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { BangerError, isCode } from "../../domain/errors.js";
import type { Runner } from "../../ports/runner.js";
import { ExecRunner } from "../exec/runner.js";

/** Hex sha256 of a file, streamed so multi-GiB images never sit in memory. */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    const stream = createReadStream(path, { highWaterMark: 1 << 20 });
    stream.on("data", (b) => hash.update(b));
    stream.on("error", (e) =>
      reject(new BangerError("DISK_FAILED", `cannot read ${path}: ${e.message}`, { hint: "check that the file exists and is readable", cause: e })),
    );
    stream.on("end", () => resolve(hash.digest("hex")));
  });
}

const COPY_TIMEOUT_MS = 10 * 60_000;
const defaultRunner = new ExecRunner();

/**
 * The one file copy for images and disks: `cp --reflink=auto --sparse=always`, instant on
 * btrfs/xfs, and holes stay holes elsewhere (a 512 MiB rootfs holds ~200 MiB of data). An existing
 * dst is removed first, so a file a VM still has open is never rewritten in place.
 * Throws TIMEOUT, or DISK_FAILED with cp's message.
 */
export async function copyFileReflink(src: string, dst: string, timeoutMs = COPY_TIMEOUT_MS, runner: Runner = defaultRunner): Promise<void> {
  const hint = "check free space (`df -h`) in the state directory";
  try {
    await rm(dst, { force: true });
    await runner.run("cp", ["--reflink=auto", "--sparse=always", "--", src, dst], { timeoutMs });
  } catch (e) {
    if (isCode(e, "TIMEOUT")) throw new BangerError("TIMEOUT", `copying ${src} to ${dst} did not finish within ${timeoutMs} ms`, { hint, cause: e });
    throw new BangerError("DISK_FAILED", `cannot copy ${src} to ${dst}: ${(e as Error).message}`, { hint, cause: e });
  }
}
