import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { BangerError } from "../../domain/errors.js";

/** Hex sha256 of a file, streamed so multi-GiB images never sit in memory. */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    const stream = createReadStream(path, { highWaterMark: 1 << 20 });
    stream.on("data", (b) => hash.update(b));
    stream.on("error", (e) =>
      reject(new BangerError("DISK_FAILED", `cannot read ${path}: ${e.message}`, { hint: "check that the file exists and is readable", cause: e })));
    stream.on("end", () => resolve(hash.digest("hex")));
  });
}

const COPY_TIMEOUT_MS = 10 * 60_000;

/**
 * Copy with `cp --reflink=auto --sparse=always`: instant on btrfs/xfs, and
 * holes stay holes elsewhere (a 512 MiB rootfs holds ~200 MiB of data).
 */
export function copyFileReflink(src: string, dst: string, timeoutMs = COPY_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("cp", ["--reflink=auto", "--sparse=always", "--", src, dst], { timeout: timeoutMs, killSignal: "SIGKILL" }, (err, _out, stderr) => {
      if (!err) return resolve();
      const timedOut = err.killed === true;
      reject(new BangerError(timedOut ? "TIMEOUT" : "DISK_FAILED",
        timedOut ? `copying ${src} to ${dst} did not finish within ${timeoutMs} ms` : `cannot copy ${src} to ${dst}: ${stderr.trim() || err.message}`,
        { hint: "check free space (`df -h`) in the state directory", cause: err }));
    });
  });
}
