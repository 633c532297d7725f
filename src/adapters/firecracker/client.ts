import { Agent, request } from "node:http";
import { dirname } from "node:path";
import { BangerError } from "../../domain/errors.js";
import type { ApiRequest } from "./schemas.js";

export const DEFAULT_API_TIMEOUT_MS = 5_000;

function faultMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { fault_message?: unknown };
    if (typeof parsed.fault_message === "string") return parsed.fault_message;
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.trim() || "(empty response body)";
}

/**
 * HTTP/1.1 over Firecracker's API socket, with node:http: bangerd's server already loads it, where
 * an HTTP client library would add its own parser and dispatcher to the daemon's resident memory
 * (docs/architecture.md, "CLI and daemon footprint"). Every call carries a deadline that covers
 * connecting, the answer's head and its body: a wedged VMM must surface as an error, never as a
 * hung create.
 */
export class FirecrackerClient {
  /** One kept-alive connection, one request at a time: Firecracker's API thread serialises them anyway. */
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });

  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = DEFAULT_API_TIMEOUT_MS,
  ) {}

  private hint(): string {
    return `see firecracker.log and console.log in ${dirname(this.socketPath)}`;
  }

  private exchange(method: string, path: string, body: string | undefined, signal: AbortSignal): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> =
        body === undefined ? { accept: "application/json" } : { accept: "application/json", "content-type": "application/json" };
      const req = request({ socketPath: this.socketPath, agent: this.agent, method, path, headers, signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
        res.on("aborted", () => reject(new Error("the answer was cut off")));
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  private async call(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<{ status: number; text: string }> {
    const deadline = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, deadline]) : deadline;
    const what = `${method} ${path}`;
    try {
      return await this.exchange(method, path, body === undefined ? undefined : JSON.stringify(body), combined);
    } catch (e) {
      if (signal?.aborted) throw signal.reason ?? e;
      const err = e as NodeJS.ErrnoException;
      if (deadline.aborted) {
        throw new BangerError("TIMEOUT", `firecracker API did not answer ${what} within ${this.timeoutMs} ms`, { hint: this.hint(), cause: e });
      }
      throw new BangerError("VMM_FAILED", `cannot reach the firecracker API at ${this.socketPath} for ${what}: ${err.code ?? err.message}`, {
        hint: `the firecracker process may have exited; ${this.hint()}`,
        cause: e,
      });
    }
  }

  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    const { status, text } = await this.call("GET", path, undefined, signal);
    if (status !== 200) {
      throw new BangerError("VMM_FAILED", `firecracker rejected GET ${path} (${status}): ${faultMessage(text)}`, { hint: this.hint() });
    }
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new BangerError("VMM_FAILED", `firecracker answered GET ${path} with non-JSON: ${text.slice(0, 200)}`, { hint: this.hint(), cause: e });
    }
  }

  /** A configuration or action request; Firecracker answers 204 on success, 400 + fault_message otherwise. */
  async send(req: ApiRequest, signal?: AbortSignal): Promise<void> {
    const { status, text } = await this.call(req.method, req.path, req.body, signal);
    if (status >= 200 && status < 300) return;
    throw new BangerError("VMM_FAILED", `firecracker rejected ${req.method} ${req.path}: ${faultMessage(text)}`, {
      hint: `check the file paths, TAP and ids in the request; ${this.hint()}`,
    });
  }

  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }
}

/** Run fn with a client that is always closed afterwards. */
export async function withClient<T>(socketPath: string, timeoutMs: number, fn: (c: FirecrackerClient) => Promise<T>): Promise<T> {
  const c = new FirecrackerClient(socketPath, timeoutMs);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}
