import { Client } from "undici";
import { BangerError, type ErrorBody } from "../domain/errors.js";

const DEFAULT_TIMEOUT_MS = 30_000;

/** The CLI's only way to the daemon: JSON over the Unix socket, /v1 routes. */
export class ApiClient {
  private readonly client: Client;

  constructor(readonly socket: string) {
    this.client = new Client("http://bangerd", { socketPath: socket, connect: { timeout: 3_000 } });
  }

  async call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown, timeoutMs = DEFAULT_TIMEOUT_MS, signal?: AbortSignal): Promise<T> {
    let res;
    try {
      res = await this.client.request({
        method,
        path: `/v1${path}`,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal,
      });
    } catch (e) {
      if (signal?.aborted) throw new BangerError("CANCELLED", `${method} ${path} was cancelled`);
      const code = (e as NodeJS.ErrnoException).code ?? "";
      if (["ENOENT", "ECONNREFUSED", "UND_ERR_CONNECT_TIMEOUT", "EACCES"].includes(code)) {
        if (code === "EACCES") {
          throw new BangerError("DAEMON_UNREACHABLE", `permission denied on socket ${this.socket}`, { hint: "join the `banger` group or run as the daemon's user" });
        }
        throw new BangerError("DAEMON_UNREACHABLE", `bangerd is not running (socket ${this.socket}): start it with \`banger daemon start\``);
      }
      if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
        throw new BangerError("TIMEOUT", `bangerd did not answer ${method} ${path} within ${timeoutMs / 1000} s`, {
          hint: "check `banger daemon status` and the daemon log in the state dir",
        });
      }
      throw new BangerError("DAEMON_UNREACHABLE", `cannot reach bangerd at ${this.socket}: ${(e as Error).message}`);
    }
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      throw new BangerError("INTERNAL", `bangerd sent a non-JSON reply (${res.statusCode}): ${text.slice(0, 200)}`);
    }
    if (res.statusCode >= 400) {
      const err = (json as { error?: ErrorBody }).error;
      if (err?.code) throw new BangerError(err.code, err.message, { hint: err.hint, stage: err.stage });
      throw new BangerError("INTERNAL", `bangerd answered ${res.statusCode}`);
    }
    return json as T;
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
