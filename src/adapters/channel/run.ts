import type { Duplex } from "node:stream";
import { BangerError } from "../../domain/errors.js";
import type { RunResult } from "../../ports/channel.js";

// The host end of banger-channel's RUN verb, after "OK RUN": send the script, read its output up
// to "EXIT <code>".

const MAX_LINES = 200;
const MAX_LINE = 4096;
const EXIT_RE = /^EXIT (\d{1,3})$/;

/**
 * What banger-channel's `sh -s` reads off the port. The EXIT trap reports the status however the
 * shell ends (`set -e` included); `exit` stops it before it would wait for more input. The script is
 * a brace group: sh parses a compound command whole before running any of it, so a copy cut short
 * (the host went away mid-send, the guest read EOF) is a syntax error, never half a re-identity.
 * Its stdin is /dev/null: the programs it runs must not eat the port's bytes.
 */
export function wrapScript(script: string): Buffer {
  return Buffer.from(`trap 'echo "EXIT $?"' EXIT\n{\n${script.endsWith("\n") ? script : `${script}\n`}} </dev/null\nexit\n`);
}

/** Pure: the lines so far and, once the EXIT line came, the code. Pending is the unterminated tail. */
export function splitRunOutput(pending: string, chunk: string): { lines: string[]; pending: string; code?: number } {
  const all = (pending + chunk).split("\n");
  const rest = all.pop() ?? "";
  const lines: string[] = [];
  for (const l of all) {
    const m = EXIT_RE.exec(l);
    if (m) return { lines, pending: "", code: Number(m[1]) };
    lines.push(l.length > MAX_LINE ? `${l.slice(0, MAX_LINE)}…` : l);
  }
  return { lines, pending: rest.length > MAX_LINE ? rest.slice(-MAX_LINE) : rest };
}

export function readRunResult(sock: Duplex, body: Buffer, o: { vm: string; timeoutMs: number; signal?: AbortSignal }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    let pending = "";
    let settled = false;
    const finish = (err: Error | undefined, code?: number) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve({ code: code!, lines });
    };
    const onAbort = () => finish(new BangerError("CANCELLED", `the script run in ${o.vm} was cancelled`));
    const timer = setTimeout(
      () =>
        finish(
          new BangerError("TIMEOUT", `the script run in ${o.vm} over the channel did not finish within ${o.timeoutMs} ms`, {
            hint: `its last output: ${lines.slice(-3).join(" | ") || "(none)"}`,
          }),
        ),
      o.timeoutMs,
    );
    o.signal?.addEventListener("abort", onAbort, { once: true });
    if (o.signal?.aborted) return onAbort();
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      const r = splitRunOutput(pending, chunk);
      pending = r.pending;
      lines.push(...r.lines);
      if (lines.length > MAX_LINES) lines.splice(0, lines.length - MAX_LINES);
      if (r.code !== undefined) finish(undefined, r.code);
    });
    sock.on("close", () => finish(new BangerError("CHANNEL_FAILED", `${o.vm}'s channel closed before the script reported its exit status`)));
    sock.on("error", (e) => finish(new BangerError("CHANNEL_FAILED", `${o.vm}'s channel: ${e.message}`)));
    sock.resume();
    // Over banger-agent the script already went with the open (it is read whole before it runs).
    if (body.length > 0) sock.write(body);
  });
}
