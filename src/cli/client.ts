import { connect } from "node:net";
import { BangerError, type ErrorBody } from "../domain/errors.js";

const DEFAULT_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 3_000;

interface Reply { status: number; text: string; serverMs?: number }

/** An error of our own making, so the mapping below can tell our timeouts from socket errors. */
function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf("\r\n", at);
    const size = eol < 0 ? NaN : parseInt(body.subarray(at, eol).toString("latin1"), 16);
    if (!(size > 0)) return Buffer.concat(parts);
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** Status, headers and body of a whole HTTP/1.1 answer read until the daemon closed the connection. */
function parseReply(raw: Buffer): Reply {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) throw coded("BAD_REPLY", "bangerd closed the connection before a complete answer");
  const [statusLine, ...lines] = raw.subarray(0, end).toString("latin1").split("\r\n");
  const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
  let body = raw.subarray(end + 4);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) body = dechunk(body);
  else if (headers.has("content-length")) body = body.subarray(0, Number(headers.get("content-length")));
  const dur = /(?:^|[,;\s])dur=([\d.]+)/.exec(headers.get("server-timing") ?? "");
  return { status: Number(statusLine.split(" ")[1]), text: body.toString("utf8"), serverMs: dur ? Number(dur[1]) : undefined };
}

/**
 * One request on its own connection, HTTP/1.1 written by hand over the Unix socket: node:http
 * and undici cost the CLI more to load than the request takes. `Connection: close`, so the
 * answer ends where the stream does. `timeoutMs` bounds the time the socket sits idle, i.e. the
 * wait for the answer and any stall in it, as undici's headers and body timeouts did.
 */
function send(socket: string, method: string, path: string, body: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    const chunks: Buffer[] = [];
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      signal?.removeEventListener("abort", onAbort);
      s.destroy();
      reject(e);
    };
    const onAbort = () => fail(coded("ABORTED", "cancelled"));
    const connectTimer = setTimeout(() => fail(coded("CONNECT_TIMEOUT", "connect timed out")), CONNECT_TIMEOUT_MS);
    signal?.addEventListener("abort", onAbort, { once: true });
    s.setTimeout(timeoutMs, () => fail(coded("ANSWER_TIMEOUT", "no answer in time")));
    s.on("error", fail);
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("end", () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      s.destroy();
      try {
        resolve(parseReply(Buffer.concat(chunks)));
      } catch (e) {
        reject(e as Error);
      }
    });
    s.once("connect", () => {
      clearTimeout(connectTimer);
      const payload = body === undefined ? "" : body;
      const head = `${method} ${path} HTTP/1.1\r\nHost: bangerd\r\nConnection: close\r\n` +
        (body === undefined ? "" : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n`) + "\r\n";
      s.write(head + payload);
    });
  });
}

/** The CLI's only way to the daemon: JSON over the Unix socket, /v1 routes. */
export class ApiClient {
  /**
   * Per command: the daemon's own time on its requests (their Server-Timing headers), and the
   * time this process spent waiting on it, connect to last byte.
   */
  readonly timing = { requests: 0, serverMs: 0, waitMs: 0 };
  private socketPath?: Promise<string>;

  /** The socket is resolved on the first call, so a command that never calls pays nothing. */
  constructor(private readonly resolveSocket: () => Promise<string>) {}

  socket(): Promise<string> {
    this.socketPath ??= this.resolveSocket();
    return this.socketPath;
  }

  async call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown, timeoutMs = DEFAULT_TIMEOUT_MS, signal?: AbortSignal): Promise<T> {
    const socket = await this.socket();
    if (signal?.aborted) throw new BangerError("CANCELLED", `${method} ${path} was cancelled`);
    let res: Reply;
    const t0 = performance.now();
    try {
      res = await send(socket, method, `/v1${path}`, body === undefined ? undefined : JSON.stringify(body), timeoutMs, signal);
    } catch (e) {
      if (signal?.aborted) throw new BangerError("CANCELLED", `${method} ${path} was cancelled`);
      const code = (e as NodeJS.ErrnoException).code ?? "";
      if (["ENOENT", "ECONNREFUSED", "CONNECT_TIMEOUT", "EACCES"].includes(code)) {
        if (code === "EACCES") {
          throw new BangerError("DAEMON_UNREACHABLE", `permission denied on socket ${socket}`, { hint: "join the `banger` group or run as the daemon's user" });
        }
        throw new BangerError("DAEMON_UNREACHABLE", `bangerd is not running (socket ${socket}): start it with \`banger daemon start\``);
      }
      if (code === "ANSWER_TIMEOUT") {
        throw new BangerError("TIMEOUT", `bangerd did not answer ${method} ${path} within ${timeoutMs / 1000} s`, {
          hint: "check `banger daemon status` and the daemon log in the state dir",
        });
      }
      throw new BangerError("DAEMON_UNREACHABLE", `cannot reach bangerd at ${socket}: ${(e as Error).message}`);
    }
    this.timing.requests++;
    this.timing.serverMs += res.serverMs ?? 0;
    this.timing.waitMs += performance.now() - t0;
    let json: unknown;
    try {
      json = res.text ? JSON.parse(res.text) : {};
    } catch {
      throw new BangerError("INTERNAL", `bangerd sent a non-JSON reply (${res.status}): ${res.text.slice(0, 200)}`);
    }
    if (res.status >= 400) {
      const err = (json as { error?: ErrorBody }).error;
      if (err?.code) throw new BangerError(err.code, err.message, { hint: err.hint, stage: err.stage });
      throw new BangerError("INTERNAL", `bangerd answered ${res.status}`);
    }
    return json as T;
  }
}
