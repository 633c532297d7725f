import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { connect } from "node:net";
import { BangerError } from "../domain/errors.js";
import { processAlive } from "../adapters/exec/proc.js";

/** True when something accepts connections on the Unix socket. */
export function socketLive(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/**
 * One daemon per state dir: a pid lock file. A lock whose pid is dead is
 * stale (the daemon crashed) and is taken over; a live one is refused.
 */
export async function acquireDaemonLock(lockFile: string, socket: string): Promise<() => void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockFile, "wx", 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number(readFileSync(lockFile, "utf8").trim());
      if (pid && pid !== process.pid && processAlive(pid)) {
        throw new BangerError("DAEMON_RUNNING", `bangerd is already running (pid ${pid}, lock ${lockFile})`, {
          hint: "use the running daemon, or stop it with `banger daemon stop`",
        });
      }
      unlinkSync(lockFile); // stale: its owner is gone
      if (attempt === 1) throw new BangerError("DAEMON_RUNNING", `could not take the lock ${lockFile}`);
    }
  }
  if (existsSync(socket)) {
    if (await socketLive(socket)) {
      unlinkSync(lockFile);
      throw new BangerError("DAEMON_RUNNING", `another bangerd is serving ${socket}`, {
        hint: "stop it with `banger daemon stop`, or give this one another `socket` in the config",
      });
    }
    unlinkSync(socket); // left behind by a crashed daemon
  }
  return () => {
    try {
      if (readFileSync(lockFile, "utf8").trim() === String(process.pid)) unlinkSync(lockFile);
    } catch {
      // already gone
    }
  };
}
