import { spawn } from "node:child_process";

export interface ProcResult {
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the binary could not be started at all (e.g. ENOENT). */
  spawnError?: NodeJS.ErrnoException;
}

/**
 * Run a short-lived tool and always resolve: callers here classify failures
 * themselves (auth failed vs. host key mismatch vs. timeout).
 */
export function runProc(bin: string, args: string[], timeoutMs: number, signal?: AbortSignal): Promise<ProcResult> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let spawnError: NodeJS.ErrnoException | undefined;
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    const onAbort = (): void => {
      child.kill("SIGKILL");
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (e: NodeJS.ErrnoException) => (spawnError = e));
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr, timedOut, spawnError });
    });
  });
}
