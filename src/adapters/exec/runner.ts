import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { BangerError } from "../../domain/errors.js";
import type { Runner, RunOptions, RunResult } from "../../ports/runner.js";

const DEFAULT_TIMEOUT_MS = 30_000;

export interface ExecOptions extends RunOptions {
  /** Kill the child (SIGKILL) on abort and reject with the signal's reason. */
  signal?: AbortSignal;
}

export interface DetachedOptions {
  /** The child's stdout and stderr both go to this file (no pipes back to us). */
  output: string;
  /** Append (keeps earlier output, O_APPEND) or truncate the file first. */
  append: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Open descriptors the child inherits as fd 3, 4, ... (the caller still owns and closes its copies). */
  inheritFds?: number[];
}

/** Why a detached process is no longer running. */
export type DetachedEnd =
  | { kind: "exited"; code: number | null; signal: NodeJS.Signals | null; detail: string }
  | { kind: "spawn-error"; error: NodeJS.ErrnoException; detail: string };

export interface DetachedProcess {
  /** Undefined when the process could not be started (`ended` says why). */
  readonly pid: number | undefined;
  /** Settles (never rejects) once the process exits or fails to start. */
  readonly ended: Promise<DetachedEnd>;
  /** The end, once it happened; undefined while the process runs (as far as we have heard). */
  end(): DetachedEnd | undefined;
}

/**
 * The one way adapters run host programs. `run` is for short commands: a mandatory timeout,
 * non-zero exits become COMMAND_FAILED. `spawnDetached` is for VMMs: a process in its own session
 * that outlives the daemon (stdio to a file, unref'd); its callers bound its start-up themselves
 * (see spawnUntilReady).
 */
export class ExecRunner implements Runner {
  run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<RunResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      let aborted = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs);
      const onAbort = (): void => {
        aborted = true;
        child.kill("SIGKILL");
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const settle = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      child.stdout!.on("data", (b: Buffer) => out.push(b));
      child.stderr!.on("data", (b: Buffer) => err.push(b));
      // A command that exits before reading all its input is judged by its exit code; an EPIPE here
      // would otherwise be an unhandled error that takes the daemon down.
      child.stdin?.on("error", () => undefined);
      if (opts.input !== undefined) child.stdin!.end(opts.input);
      const line = [cmd, ...args].join(" ");
      child.on("error", (e: NodeJS.ErrnoException) => {
        settle();
        const hint = e.code === "ENOENT" ? `install ${cmd} or put it on PATH; \`banger doctor\` checks host tools` : undefined;
        reject(new BangerError("COMMAND_FAILED", `cannot run ${cmd}: ${e.message}`, { hint, cause: e }));
      });
      child.on("close", (code, sig) => {
        settle();
        const res = { code: code ?? (sig ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
        if (aborted) {
          reject(signal!.reason);
        } else if (timedOut) {
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

  /**
   * Start a long-lived process in its own session (it survives a daemon restart and our signals),
   * stdin closed, stdout and stderr on one file descriptor, unref'd so it never keeps us alive.
   */
  spawnDetached(cmd: string, args: string[], opts: DetachedOptions): DetachedProcess {
    let end: DetachedEnd | undefined;
    let settle!: (e: DetachedEnd) => void;
    const ended = new Promise<DetachedEnd>((resolve) => (settle = resolve));
    const finish = (e: DetachedEnd): void => {
      end ??= e;
      settle(end);
    };
    const fd = openSync(opts.output, opts.append ? "a" : "w");
    let pid: number | undefined;
    try {
      const child = spawn(cmd, args, {
        detached: true,
        stdio: ["ignore", fd, fd, ...(opts.inheritFds ?? [])],
        env: opts.env ?? process.env,
        cwd: opts.cwd,
      });
      child.on("error", (error: NodeJS.ErrnoException) => finish({ kind: "spawn-error", error, detail: `cannot run ${cmd}: ${error.message}` }));
      child.on("exit", (code, signal) => finish({ kind: "exited", code, signal, detail: signal ? `was killed by ${signal}` : `exited with code ${code}` }));
      child.unref();
      pid = child.pid;
    } finally {
      // The child holds its own copy; ours would only leak.
      closeSync(fd);
    }
    return { pid, ended, end: () => end };
  }
}
