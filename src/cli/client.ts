import { request } from "node:http";
import { BangerError, type ErrorBody } from "../domain/errors.js";

const DEFAULT_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 3_000;

interface Reply {
  status: number;
  text: string;
  serverMs?: number;
}

/** An error of our own making, so the mapping below can tell our timeouts from socket errors. */
function coded(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * One request on its own connection (node:http over the Unix socket; undici costs the CLI
 * more to load than the request takes). `timeoutMs` bounds the time the socket sits idle,
 * i.e. the wait for the answer and any stall in it.
 */
function send(socket: string, method: string, path: string, body: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> =
      body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
    const req = request({ socketPath: socket, method, path, headers, agent: false, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const dur = /(?:^|[,;\s])dur=([\d.]+)/.exec(String(res.headers["server-timing"] ?? ""));
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), serverMs: dur ? Number(dur[1]) : undefined });
      });
    });
    // A Unix socket connects at once or fails at once; a daemon that accepts but never serves is the case bounded here.
    const connectTimer = setTimeout(() => req.destroy(coded("CONNECT_TIMEOUT", "connect timed out")), CONNECT_TIMEOUT_MS);
    req.on("socket", (s) => s.once("connect", () => clearTimeout(connectTimer)));
    req.setTimeout(timeoutMs, () => req.destroy(coded("ANSWER_TIMEOUT", "no answer in time")));
    req.on("error", (e) => {
      clearTimeout(connectTimer);
      reject(e);
    });
    req.on("close", () => clearTimeout(connectTimer));
    req.end(body);
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
          throw new BangerError(
            "FORBIDDEN",
            `permission denied on bangerd's socket ${socket}: only root and members of its group (api_group, default banger) may use it`,
            {
              hint: "ask an administrator: sudo usermod -aG banger $USER, then log in again",
            },
          );
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
