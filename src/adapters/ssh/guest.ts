import { request } from "node:http";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { BangerError, isCode } from "../../domain/errors.js";
import type { Guest, SshTarget } from "../../ports/guest.js";
import type { RunResult } from "../../ports/runner.js";
import { ExecRunner, type ExecOptions } from "../exec/runner.js";
import { sshArgs } from "./args.js";

export interface SshGuestOptions {
  /** ssh client binary; `ssh` on PATH by default. */
  sshBin?: string;
  log: Logger;
  /** Runs ssh; a fresh ExecRunner by default. */
  runner?: ExecRunner;
}

type Phase = "no TCP" | "no banner" | "auth failed" | "host key mismatch" | "ssh failed";

interface Attempt {
  phase: Phase;
  detail: string;
}

// Create latency is dominated by how soon we notice sshd; poll often.
const POLL_MS = 150;
const TCP_TIMEOUT_MS = 1_000;
const BANNER_TIMEOUT_MS = 3_000;
const SSH_ATTEMPT_TIMEOUT_MS = 15_000;

const HINTS: Record<Phase, string> = {
  "no TCP": "the guest never opened port 22: check `banger vm logs` (console) for a boot failure and that the VM's network came up",
  "no banner": "a port answered but sshd never sent its banner: the guest may be overloaded or still booting; raise ssh_timeout_s",
  "auth failed": "sshd rejected banger's key: check that the image's root authorized_keys is banger's public key",
  "host key mismatch":
    "the guest presented a different host key than banger injected: the image may regenerate host keys at boot, or another machine holds this IP",
  "ssh failed": "see the ssh error above",
};

/** Connect and read the first line; resolves with it, or rejects naming the phase that failed. */
function probeBanner(host: string, port: number, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    let connected = false;
    let buf = "";
    const done = (err?: Attempt, banner?: string): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve(banner!);
    };
    const onAbort = (): void => done({ phase: "no TCP", detail: "aborted" });
    signal?.addEventListener("abort", onAbort, { once: true });
    let timer = setTimeout(() => done({ phase: "no TCP", detail: `connect timed out after ${TCP_TIMEOUT_MS} ms` }), TCP_TIMEOUT_MS);
    sock.setEncoding("latin1");
    sock.on("connect", () => {
      connected = true;
      clearTimeout(timer);
      timer = setTimeout(() => done({ phase: "no banner", detail: `no SSH banner within ${BANNER_TIMEOUT_MS} ms` }), BANNER_TIMEOUT_MS);
    });
    sock.on("data", (d: string) => {
      buf += d;
      const nl = buf.indexOf("\n");
      if (nl < 0 && buf.length < 256) return;
      const line = buf.slice(0, nl < 0 ? buf.length : nl).trim();
      if (line.startsWith("SSH-2.0-") || line.startsWith("SSH-1.99-")) done(undefined, line);
      else done({ phase: "no banner", detail: `port ${port} answered with ${JSON.stringify(line.slice(0, 60))}, not an SSH banner` });
    });
    sock.on("error", (e: NodeJS.ErrnoException) => done({ phase: connected ? "no banner" : "no TCP", detail: e.code ?? e.message }));
    sock.on("close", () =>
      done({ phase: connected ? "no banner" : "no TCP", detail: connected ? "connection closed before the banner" : "connection closed" }),
    );
  });
}

function classify(stderr: string, code: number): Attempt {
  const text = stderr.trim().split("\n").slice(-3).join(" | ") || `ssh exited ${code}`;
  if (/host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No \S+ host key is known/i.test(stderr))
    return { phase: "host key mismatch", detail: text };
  if (/permission denied/i.test(stderr)) return { phase: "auth failed", detail: text };
  if (/connection refused|timed out|no route/i.test(stderr)) return { phase: "no TCP", detail: text };
  return { phase: "ssh failed", detail: text };
}

/** Readiness and commands over the system ssh client. */
export class SshGuest implements Guest {
  private readonly ssh: string;
  private readonly runner: ExecRunner;

  constructor(private readonly opts: SshGuestOptions) {
    this.ssh = opts.sshBin ?? "ssh";
    this.runner = opts.runner ?? new ExecRunner();
  }

  /**
   * One ssh run; a non-zero exit is returned, not thrown. Undefined when it did not finish within
   * timeoutMs; an abort throws the signal's reason; a client that cannot start throws `code`.
   */
  private async runSsh(
    target: SshTarget,
    command: string,
    opts: ExecOptions & { timeoutMs: number },
    code: "GUEST_NOT_READY" | "COMMAND_FAILED",
  ): Promise<RunResult | undefined> {
    try {
      return await this.runner.run(this.ssh, sshArgs(target, [command], { proxyCommand: target.proxyCommand }), { ...opts, allowFailure: true });
    } catch (e) {
      opts.signal?.throwIfAborted();
      if (isCode(e, "TIMEOUT")) return undefined;
      // ExecRunner's message already reads "cannot run <ssh>: …".
      throw new BangerError(code, (e as Error).message, { hint: "install openssh-client", cause: e });
    }
  }

  async waitSsh(target: SshTarget, timeoutMs: number, signal?: AbortSignal, opts: { probe?: boolean; command?: string } = {}): Promise<void> {
    const port = target.port ?? 22;
    const started = Date.now();
    const deadline = started + timeoutMs;
    let last: Attempt = { phase: "no TCP", detail: "never attempted" };
    let mismatches = 0;
    for (;;) {
      signal?.throwIfAborted();
      try {
        // Through a proxy the address plays no part; the ssh run below is the whole probe.
        if (!target.proxyCommand && opts.probe !== false) await probeBanner(target.host, port, signal);
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        const attemptMs = Math.min(remaining, SSH_ATTEMPT_TIMEOUT_MS);
        const res = await this.runSsh(target, opts.command ?? "true", { timeoutMs: attemptMs, signal }, "GUEST_NOT_READY");
        if (res?.code === 0) {
          this.opts.log.debug({ host: target.host, ms: Date.now() - started }, "ssh ready");
          return;
        }
        if (!res) {
          // An attempt cut short by the overall deadline says less than the failure before it.
          if (attemptMs === SSH_ATTEMPT_TIMEOUT_MS || last.detail === "never attempted") {
            last = { phase: "ssh failed", detail: `ssh attempt did not finish within ${attemptMs} ms` };
          }
        } else {
          last = classify(res.stderr, res.code);
        }
        // A wrong host key does not fix itself; stop early instead of burning the whole timeout.
        if (last.phase === "host key mismatch" && ++mismatches >= 3) break;
      } catch (e) {
        if (e instanceof BangerError) throw e;
        if (signal?.aborted) signal.throwIfAborted();
        last = e as Attempt;
      }
      if (Date.now() + POLL_MS >= deadline) break;
      await sleep(POLL_MS, undefined, { signal }).catch(() => signal?.throwIfAborted());
    }
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    throw new BangerError(
      "GUEST_NOT_READY",
      `no SSH login to ${target.user}@${target.host}:${port} after ${secs} s (last failure: ${last.phase}: ${last.detail})`,
      {
        hint: HINTS[last.phase],
        stage: "wait_ssh",
      },
    );
  }

  async waitPort(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const started = Date.now();
    const deadline = started + timeoutMs;
    let last = "never attempted";
    for (;;) {
      signal?.throwIfAborted();
      const err = await new Promise<string | undefined>((resolve) => {
        const sock = connect({ host, port });
        const timer = setTimeout(() => {
          sock.destroy();
          resolve(`connect timed out after ${TCP_TIMEOUT_MS} ms`);
        }, TCP_TIMEOUT_MS);
        sock.on("connect", () => {
          clearTimeout(timer);
          sock.destroy();
          resolve(undefined);
        });
        sock.on("error", (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          resolve(e.code ?? e.message);
        });
      });
      if (err === undefined) return;
      last = err;
      if (Date.now() + POLL_MS >= deadline) break;
      await sleep(POLL_MS, undefined, { signal }).catch(() => signal?.throwIfAborted());
    }
    throw new BangerError(
      "GUEST_NOT_READY",
      `nothing accepted connections on ${host}:${port} within ${((Date.now() - started) / 1000).toFixed(1)} s (last: ${last})`,
      {
        hint: "the guest service did not start; check it with `banger vm ssh` (e.g. `systemctl status`) or raise service_timeout_s",
      },
    );
  }

  httpStatus(host: string, port: number, path: string, headers: Record<string, string>, timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request({ host, port, path, method: "GET", headers, timeout: timeoutMs, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("timeout", () => req.destroy(new Error(`no HTTP answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end();
    });
  }

  async exec(target: SshTarget, command: string, timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
    const res = await this.runSsh(target, command, { timeoutMs }, "COMMAND_FAILED");
    if (!res) {
      throw new BangerError("TIMEOUT", `ssh ${target.user}@${target.host} ${JSON.stringify(command)} did not finish within ${timeoutMs} ms`, {
        hint: "the guest may be hung; `banger vm stop` falls back to killing the VMM",
      });
    }
    return { code: res.code, stdout: res.stdout, stderr: res.stderr };
  }
}
