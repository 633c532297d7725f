import { spawn } from "node:child_process";
import { BangerError } from "../../domain/errors.js";
import type { SshTarget } from "../../ports/guest.js";
import type { GuestShell, ShellRunOptions } from "../../ports/guest-shell.js";
import { sshArgs } from "./args.js";

/** Splits a byte stream into lines, holding a partial last line until more arrives or the stream ends. */
function lineSplitter(emit: (line: string) => void): { push(b: Buffer): void; end(): void } {
  let buf = "";
  return {
    push(b) {
      buf += b.toString("utf8");
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        emit(buf.slice(0, nl).replace(/\r$/, ""));
        buf = buf.slice(nl + 1);
      }
    },
    end() {
      if (buf) emit(buf);
      buf = "";
    },
  };
}

/** Commands in the guest over the system ssh client, output streamed as it comes. */
export class SshShell implements GuestShell {
  constructor(private readonly sshBin = "ssh") {}

  run(target: SshTarget, command: string, opts: ShellRunOptions): Promise<{ code: number }> {
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      // ConnectTimeout bounds the connect only; the command itself is bounded by timeoutMs below.
      const child = spawn(this.sshBin, sshArgs(target, [command], { connectTimeoutS: 15, proxyCommand: target.proxyCommand }), {
        stdio: ["pipe", "pipe", "pipe"],
      });
      const out = lineSplitter((l) => opts.onLine("stdout", l));
      const err = lineSplitter((l) => opts.onLine("stderr", l));
      let why: "timeout" | "abort" | undefined;
      const timer = setTimeout(() => {
        why = "timeout";
        child.kill("SIGKILL");
      }, opts.timeoutMs);
      const onAbort = () => {
        why = "abort";
        child.kill("SIGKILL");
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.stderr.on("data", (b: Buffer) => err.push(b));
      // The guest may exit before reading all of stdin; that is its business, not an error here.
      child.stdin.on("error", () => undefined);
      child.stdin.end(opts.input ?? "");
      child.on("error", (e) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        reject(new BangerError("COMMAND_FAILED", `cannot run ${this.sshBin}: ${e.message}`, { hint: "install openssh-client", cause: e }));
      });
      child.on("close", (code, sig) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        out.end();
        err.end();
        if (why === "abort") reject(signal!.reason);
        else if (why === "timeout") reject(new BangerError("TIMEOUT", `the command did not finish within ${Math.round(opts.timeoutMs / 1000)} s`));
        else resolve({ code: code ?? (sig ? 128 : 1) });
      });
    });
  }
}
