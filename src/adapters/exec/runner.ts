import { spawn } from "node:child_process";
import { BangerError } from "../../domain/errors.js";
import type { Runner, RunOptions, RunResult } from "../../ports/runner.js";

const DEFAULT_TIMEOUT_MS = 30_000;

/** Runs host commands with a mandatory timeout; non-zero exits become COMMAND_FAILED. */
export class ExecRunner implements Runner {
  run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs);
      child.stdout!.on("data", (b: Buffer) => out.push(b));
      child.stderr!.on("data", (b: Buffer) => err.push(b));
      if (opts.input !== undefined) child.stdin!.end(opts.input);
      const line = [cmd, ...args].join(" ");
      child.on("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const hint = e.code === "ENOENT" ? `install ${cmd} or put it on PATH; \`banger doctor\` checks host tools` : undefined;
        reject(new BangerError("COMMAND_FAILED", `cannot run ${cmd}: ${e.message}`, { hint, cause: e }));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        const res = { code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
        if (timedOut) {
          reject(new BangerError("TIMEOUT", `${line} did not finish within ${timeoutMs} ms`));
        } else if (res.code !== 0 && !opts.allowFailure) {
          const detail = (res.stderr.trim() || res.stdout.trim()).split("\n").slice(-3).join(" | ");
          reject(new BangerError("COMMAND_FAILED", `${line} exited ${res.code}: ${detail}`));
        } else {
          resolve(res);
        }
      });
    });
  }
}
