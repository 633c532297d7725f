import { request as httpRequest, Agent as HttpAgent, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
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

export type HttpMethod = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

/** A response body: the node stream, plus the two helpers the store uses to finish with it. */
export interface ResponseBody extends AsyncIterable<Buffer> {
  on(event: "data", listener: (chunk: Buffer) => void): this;
  once(event: "end", listener: () => void): this;
  once(event: "error", listener: (e: Error) => void): this;
  destroy(error?: Error): this;
  /** Read and drop the rest, so the connection goes back to the pool. */
  dump(): Promise<void>;
  text(): Promise<string>;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
  /** The URL that answered, after redirects. */
  url: string;
}

export interface CallOptions {
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  signal: AbortSignal;
  /** Bound the whole exchange (small documents); streams rely on the idle timeout instead. */
  whole?: boolean;
}

export const header = (r: HttpResponse, name: string): string | undefined => {
  const v = r.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
};

/** Thrown inside a request when one of the three per-phase timeouts fires. */
class PhaseTimeout extends Error {}

/**
 * HTTP for image transfers over node:http/https, which bangerd loads anyway (undici stays out of the
 * daemon for its resident size: docs/architecture.md, "CLI and daemon footprint"); keep-alive
 * agents, connect/headers/idle timeouts, errors named with the URL.
 */
export class Http {
  private readonly agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };

  constructor(readonly timeouts: HttpTimeouts = DEFAULT_TIMEOUTS) {}

  /** GET and HEAD follow up to 5 redirects (registries may send blobs to object storage). */
  async call(method: HttpMethod, url: string, o: CallOptions): Promise<HttpResponse> {
    const deadline = o.whole ? AbortSignal.timeout(this.timeouts.smallMs) : undefined;
    const signal = deadline ? AbortSignal.any([o.signal, deadline]) : o.signal;
    let at = url;
    for (let hop = 0; ; hop++) {
      let res: IncomingMessage;
      try {
        res = await this.once(method, new URL(at), o, signal);
      } catch (e) {
        throw transferError(e, `${method} ${at}`, o.signal, deadline);
      }
      const location = res.headers.location;
      if ((method === "GET" || method === "HEAD") && [301, 302, 303, 307, 308].includes(res.statusCode ?? 0) && typeof location === "string" && hop < 5) {
        res.resume();
        at = new URL(location, at).toString();
        continue;
      }
      return { status: res.statusCode ?? 0, headers: res.headers, body: withHelpers(res), url: at };
    }
  }

  private once(method: HttpMethod, u: URL, o: CallOptions, signal: AbortSignal): Promise<IncomingMessage> {
    const t = this.timeouts;
    const tls = u.protocol === "https:";
    return new Promise((resolve, reject) => {
      const req = (tls ? httpsRequest : httpRequest)(u, {
        method,
        headers: o.headers as OutgoingHttpHeaders,
        agent: tls ? this.agents.https : this.agents.http,
        signal,
      });
      const fail = (e: Error) => {
        clearTimeout(timer);
        req.destroy(e);
        reject(e);
      };
      // Connect, then headers: one timer re-armed at each phase; the body's silence is the socket's idle timeout.
      let timer = setTimeout(() => fail(new PhaseTimeout(`connect timeout after ${t.connectMs} ms`)), t.connectMs);
      req.once("socket", (s) => {
        const armHeaders = () => {
          clearTimeout(timer);
          timer = setTimeout(() => fail(new PhaseTimeout(`no response headers after ${t.headersMs} ms`)), t.headersMs);
        };
        if (s.connecting) s.once(tls ? "secureConnect" : "connect", armHeaders);
        else armHeaders();
      });
      req.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.once("response", (res) => {
        clearTimeout(timer);
        res.setTimeout(t.bodyIdleMs, () => res.destroy(new PhaseTimeout(`body idle for ${t.bodyIdleMs} ms`)));
        resolve(res);
      });
      if (o.body === undefined) req.end();
      else if (Buffer.isBuffer(o.body)) req.end(o.body);
      else pipeline(o.body, req).catch((e: Error) => fail(e));
    });
  }

  /** A small document, whole: bytes and status. */
  async fetchBytes(method: HttpMethod, url: string, o: CallOptions & { maxBytes?: number }): Promise<{ res: HttpResponse; bytes: Buffer }> {
    const res = await this.call(method, url, { ...o, whole: true });
    const max = o.maxBytes ?? 4 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res.body) {
        n += c.length;
        if (n > max) {
          res.body.destroy();
          throw sourceFailed(`${method} ${url}: the answer is over ${max} bytes`, "the source is not a banger image store");
        }
        chunks.push(c);
      }
    } catch (e) {
      if (e instanceof BangerError) throw e;
      throw transferError(e, `${method} ${url}`, o.signal);
    }
    return { res, bytes: Buffer.concat(chunks) };
  }

  close(): Promise<void> {
    this.agents.http.destroy();
    this.agents.https.destroy();
    return Promise.resolve();
  }
}

function withHelpers(res: IncomingMessage): ResponseBody {
  const body = res as IncomingMessage & ResponseBody;
  body.dump = async () => {
    for await (const chunk of res) void chunk;
  };
  body.text = async () => {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  };
  return body;
}

export function sourceFailed(message: string, hint = "check the source URL and that the registry or server is reachable", cause?: unknown): BangerError {
  return new BangerError("IMAGE_SOURCE_FAILED", message, { hint, cause });
}

/** What went wrong in a transfer, told apart: the caller cancelled, a deadline passed, or the source failed. */
export function transferError(e: unknown, what: string, signal: AbortSignal, deadline?: AbortSignal): BangerError {
  if (e instanceof BangerError) return e;
  if (signal.aborted) return new BangerError("CANCELLED", `${what}: cancelled`, { hint: "nothing was kept; run it again to retry", cause: e });
  if (deadline?.aborted || e instanceof PhaseTimeout)
    return new BangerError("TIMEOUT", `${what}: no answer in time (${(e as Error).message})`, {
      hint: "check that the source is up; a retried pull resumes where it stopped",
      cause: e,
    });
  return sourceFailed(`${what}: ${(e as Error).message}`, undefined, e);
}
