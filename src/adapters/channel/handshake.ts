import { connect, type Socket } from "node:net";
import { BangerError } from "../../domain/errors.js";
import { AGENT_HELLO } from "./frames.js";

/**
 * The two line protocols in front of a guest stream, both "CONNECT <port>\n" from the host:
 * - hybrid-vsock (Firecracker): the answer is "OK <host port>\n"; with nothing listening
 *   Firecracker closes the connection without a word (../shared/reference/firecracker-docs/vsock.md).
 * - virtio-serial (banger-channel on QEMU's agent port): the guest offers "HELLO\n" first; bytes
 *   before it are a past session's leftovers and are dropped. Then "OK <port>\n" or "ERR <why>\n".
 */
export type Dialect = "hybrid-vsock" | "virtio-serial";

/** Leftovers of earlier sessions a serial handshake skips before giving up. */
const MAX_PREAMBLE = 64 * 1024;
const MAX_LINE = 256;
const HELLO = Buffer.from("HELLO\n");

export type Reply = { kind: "more" } | { kind: "ok"; rest: Buffer } | { kind: "refused"; why: string };

/** What the bytes read so far say. Pure, for the unit tests. */
export function parseReply(buf: Buffer, dialect: Dialect, port: number | "RUN"): Reply {
  let at = 0;
  if (dialect === "virtio-serial") {
    const hello = buf.indexOf(HELLO);
    if (hello < 0) return buf.length > MAX_PREAMBLE ? { kind: "refused", why: `no HELLO from the guest in ${MAX_PREAMBLE} bytes` } : { kind: "more" };
    at = hello + HELLO.length;
    // An offer the guest made to a host that left before answering can come first: the last counts.
    while (buf.subarray(at, at + HELLO.length).equals(HELLO)) at += HELLO.length;
    if (at + HELLO.length > buf.length && HELLO.subarray(0, buf.length - at).equals(buf.subarray(at))) return { kind: "more" };
  }
  const nl = buf.indexOf(0x0a, at);
  if (nl < 0) return buf.length - at > MAX_LINE ? { kind: "refused", why: "the reply line is too long" } : { kind: "more" };
  const line = buf.subarray(at, nl).toString("latin1");
  const rest = buf.subarray(nl + 1);
  if (dialect === "hybrid-vsock") {
    return /^OK \d+$/.test(line) ? { kind: "ok", rest } : { kind: "refused", why: `unexpected reply ${JSON.stringify(line)}` };
  }
  if (line === `OK ${port}`) return { kind: "ok", rest };
  if (line.startsWith("ERR ")) return { kind: "refused", why: `the guest says: ${line.slice(4)}` };
  return { kind: "refused", why: `unexpected reply ${JSON.stringify(line)}` };
}

/** What a virtio-serial dial found: banger-agent's multiplex (the request is not sent), or the legacy channel, answered. */
export type SerialDial = { kind: "agent"; sock: Socket; rest: Buffer; version: number } | { kind: "legacy"; sock: Socket };

export interface DialOptions {
  /** For messages. */
  vm: string;
  /** What to ask for instead of CONNECT (virtio-serial only): "RUN <bytes>", answered with "OK RUN". */
  run?: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Connects to a VMM's channel socket, asks for guest port `port` and resolves with the socket once
 * the guest side accepted; bytes that came with the answer are pushed back into it.
 */
export async function dialGuestPort(path: string, dialect: Dialect, guestPort: number, o: DialOptions): Promise<Socket> {
  return (await dial(path, dialect, guestPort, o)).sock;
}

/**
 * Dials QEMU's agent.sock and reads the guest's first line: "HELLO banger-agent <n>" hands the
 * socket over for the multiplex untouched; a bare "HELLO" (the legacy sh banger-channel) gets the
 * request at once, as dialGuestPort does.
 */
export function dialSerial(path: string, guestPort: number, o: DialOptions): Promise<SerialDial> {
  return dial(path, "virtio-serial", guestPort, o);
}

function dial(path: string, dialect: Dialect, guestPort: number, o: DialOptions): Promise<SerialDial> {
  const port = o.run === undefined ? guestPort : "RUN";
  const request = o.run === undefined ? `CONNECT ${guestPort}` : `RUN ${o.run}`;
  const what = o.run === undefined ? `guest port ${guestPort}` : "a run request";
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let buf = Buffer.alloc(0);
    let settled = false;
    // The legacy channel reads its request only after its HELLO; banger-agent takes frames instead.
    let sent = dialect === "hybrid-vsock";
    const finish = (err?: BangerError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener("abort", onAbort);
      sock.off("data", onData);
      sock.off("close", onClose);
      if (err) {
        sock.destroy();
        reject(err);
      }
    };
    const onAbort = () => finish(new BangerError("CANCELLED", `opening ${what} to ${o.vm} was cancelled`));
    const timer = setTimeout(
      () =>
        finish(
          new BangerError("TIMEOUT", `${what} to ${o.vm} was not answered over ${dialect} within ${o.timeoutMs} ms`, {
            hint: "the guest may still be booting, or its banger-channel service is not running (`systemctl status banger-channel` in the guest)",
          }),
        ),
      o.timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!sent) {
        const h = buf.indexOf("HELLO");
        const nl = h < 0 ? -1 : buf.indexOf(0x0a, h);
        if (nl < 0) {
          if (buf.length > MAX_PREAMBLE) finish(new BangerError("CHANNEL_FAILED", `no HELLO from ${o.vm}'s channel in ${MAX_PREAMBLE} bytes`));
          return;
        }
        const agent = AGENT_HELLO.exec(buf.subarray(h, nl).toString("latin1"));
        if (agent) {
          sock.pause();
          finish();
          return resolve({ kind: "agent", sock, rest: buf.subarray(nl + 1), version: Number(agent[1]) });
        }
        sent = true;
        sock.write(`${request}\n`);
      }
      const r = parseReply(buf, dialect, port);
      if (r.kind === "more") return;
      if (r.kind === "refused") return finish(new BangerError("CHANNEL_FAILED", `${what} to ${o.vm} over ${dialect}: ${r.why}`));
      sock.pause();
      finish();
      if (r.rest.length > 0) sock.unshift(r.rest);
      resolve({ kind: "legacy", sock });
    };
    const onClose = () =>
      finish(
        new BangerError("CHANNEL_FAILED", `nothing accepted ${what} to ${o.vm} over ${dialect} (the channel closed the connection)`, {
          hint: `is a service listening on port ${port} in the guest, and is the image's banger-channel service running?`,
        }),
      );
    o.signal?.addEventListener("abort", onAbort, { once: true });
    if (o.signal?.aborted) return onAbort();
    sock.on("data", onData);
    sock.on("close", onClose);
    sock.once("connect", () => {
      if (sent) sock.write(`${request}\n`);
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT" || e.code === "ECONNREFUSED") {
        finish(
          new BangerError("CHANNEL_FAILED", `${o.vm} has no channel socket at ${path} (${e.code})`, {
            hint: "the VM must be running; VMs started before banger had a guest channel need a restart",
          }),
        );
      } else finish(new BangerError("CHANNEL_FAILED", `${o.vm}: ${path}: ${e.message}`));
    });
  });
}
