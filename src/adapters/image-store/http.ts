import { Agent, errors as undiciErrors, type Dispatcher } from "undici";
import { BangerError } from "../../domain/errors.js";

export interface HttpTimeouts {
  connectMs: number;
  /** Until the response headers arrive. */
  headersMs: number;
  /** Longest silence while a body streams (a stalled transfer fails, a slow one does not). */
  bodyIdleMs: number;
  /** Whole request for small documents (manifests, configs, index.json, upload steps). */
  smallMs: number;
}

export const DEFAULT_TIMEOUTS: HttpTimeouts = { connectMs: 10_000, headersMs: 30_000, bodyIdleMs: 60_000, smallMs: 60_000 };

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData["body"];
  /** The URL that answered, after redirects. */
  url: string;
}

export interface CallOptions {
  headers?: Record<string, string>;
  body?: Dispatcher.DispatchOptions["body"];
  signal: AbortSignal;
  /** Bound the whole exchange (small documents); streams rely on the idle timeout instead. */
  whole?: boolean;
}

export const header = (r: HttpResponse, name: string): string | undefined => {
  const v = r.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
};

/** HTTP for image transfers: one undici agent with connect/headers/idle timeouts; errors named with the URL. */
export class Http {
  private readonly agent: Agent;

  constructor(readonly timeouts: HttpTimeouts = DEFAULT_TIMEOUTS) {
    this.agent = new Agent({ connectTimeout: timeouts.connectMs, headersTimeout: timeouts.headersMs, bodyTimeout: timeouts.bodyIdleMs });
  }

  /** GET and HEAD follow up to 5 redirects (registries may send blobs to object storage). */
  async call(method: Dispatcher.HttpMethod, url: string, o: CallOptions): Promise<HttpResponse> {
    const deadline = o.whole ? AbortSignal.timeout(this.timeouts.smallMs) : undefined;
    const signal = deadline ? AbortSignal.any([o.signal, deadline]) : o.signal;
    let at = url;
    for (let hop = 0; ; hop++) {
      let res: Dispatcher.ResponseData;
      try {
        // The agent's own request() (not undici's top-level one): the bundle ships only the dispatchers it uses.
        const u = new URL(at);
        res = await this.agent.request({ origin: u.origin, path: `${u.pathname}${u.search}`, method, headers: o.headers, body: o.body, signal });
      } catch (e) {
        throw transferError(e, `${method} ${at}`, o.signal, deadline);
      }
      const location = res.headers.location;
      if ((method === "GET" || method === "HEAD") && [301, 302, 303, 307, 308].includes(res.statusCode) && typeof location === "string" && hop < 5) {
        await res.body.dump();
        at = new URL(location, at).toString();
        continue;
      }
      return { status: res.statusCode, headers: res.headers, body: res.body, url: at };
    }
  }

  /** A small document, whole: bytes and status. */
  async fetchBytes(method: Dispatcher.HttpMethod, url: string, o: CallOptions & { maxBytes?: number }): Promise<{ res: HttpResponse; bytes: Buffer }> {
    const res = await this.call(method, url, { ...o, whole: true });
    const max = o.maxBytes ?? 4 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res.body) {
        n += (c as Buffer).length;
        if (n > max) {
          res.body.destroy();
          throw sourceFailed(`${method} ${url}: the answer is over ${max} bytes`, "the source is not a banger image store");
        }
        chunks.push(c as Buffer);
      }
    } catch (e) {
      if (e instanceof BangerError) throw e;
      throw transferError(e, `${method} ${url}`, o.signal);
    }
    return { res, bytes: Buffer.concat(chunks) };
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

export function sourceFailed(message: string, hint = "check the source URL and that the registry or server is reachable", cause?: unknown): BangerError {
  return new BangerError("IMAGE_SOURCE_FAILED", message, { hint, cause });
}

/** What went wrong in a transfer, told apart: the caller cancelled, a deadline passed, or the source failed. */
export function transferError(e: unknown, what: string, signal: AbortSignal, deadline?: AbortSignal): BangerError {
  if (e instanceof BangerError) return e;
  if (signal.aborted) return new BangerError("CANCELLED", `${what}: cancelled`, { hint: "nothing was kept; run it again to retry", cause: e });
  const timedOut =
    deadline?.aborted ||
    e instanceof undiciErrors.ConnectTimeoutError ||
    e instanceof undiciErrors.HeadersTimeoutError ||
    e instanceof undiciErrors.BodyTimeoutError;
  if (timedOut)
    return new BangerError("TIMEOUT", `${what}: no answer in time (${(e as Error).message})`, {
      hint: "check that the source is up; a retried pull resumes where it stopped",
      cause: e,
    });
  return sourceFailed(`${what}: ${(e as Error).message}`, undefined, e);
}
