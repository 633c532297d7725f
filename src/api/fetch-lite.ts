import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";

/**
 * The part of the Fetch API's Headers, Request and Response that Hono and banger's routes use,
 * for bangerd's own listeners (src/api/node-listener.ts). Node's are built on its internal undici,
 * a module whose load costs an idle bangerd about 3 MiB of resident memory for objects that here
 * only carry a status, some headers and a small JSON body between node:http and Hono
 * (docs/architecture.md, "CLI and daemon footprint"). Bodies stay strings or bytes; a web stream
 * is made only for a caller that asks for `.body`, and a streamed answer (SSE, NDJSON) is passed
 * through as the ReadableStream it is.
 */

type HeadersLike = LiteHeaders | Headers | Record<string, string | readonly string[]> | Iterable<readonly [string, string]>;
type Bytes = Uint8Array | ArrayBuffer;
export type LiteBody = string | Bytes | ReadableStream<Uint8Array> | null | undefined;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class LiteHeaders {
  readonly #map = new Map<string, string[]>();

  constructor(init?: HeadersLike) {
    if (!init) return;
    if (typeof (init as Iterable<unknown>)[Symbol.iterator] === "function") {
      for (const [k, v] of init as Iterable<readonly [string, string]>) this.append(k, v);
      return;
    }
    for (const [k, v] of Object.entries(init as Record<string, string | readonly string[]>)) {
      if (Array.isArray(v)) for (const x of v as readonly string[]) this.append(k, x);
      else this.append(k, v as string);
    }
  }

  append(name: string, value: string): void {
    const key = name.toLowerCase();
    const v = String(value).trim();
    const list = this.#map.get(key);
    if (list) list.push(v);
    else this.#map.set(key, [v]);
  }
  set(name: string, value: string): void {
    this.#map.set(name.toLowerCase(), [String(value).trim()]);
  }
  delete(name: string): void {
    this.#map.delete(name.toLowerCase());
  }
  has(name: string): boolean {
    return this.#map.has(name.toLowerCase());
  }
  get(name: string): string | null {
    const list = this.#map.get(name.toLowerCase());
    return list ? list.join(", ") : null;
  }
  getSetCookie(): string[] {
    return [...(this.#map.get("set-cookie") ?? [])];
  }
  /** As the Fetch API orders them: by name, each Set-Cookie on its own, other repeated names joined. */
  *entries(): IterableIterator<[string, string]> {
    for (const key of [...this.#map.keys()].sort()) {
      const list = this.#map.get(key)!;
      if (key === "set-cookie") for (const v of list) yield [key, v];
      else yield [key, list.join(", ")];
    }
  }
  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): IterableIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
  forEach(fn: (value: string, key: string, parent: LiteHeaders) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}

/** Node's request stream, or bytes, or a web stream: read whole on demand, or handed out as a web stream. */
class Body {
  #source: LiteBody | IncomingMessage;
  #used = false;

  constructor(source: LiteBody | IncomingMessage) {
    this.#source = source ?? null;
  }

  get present(): boolean {
    return this.#source !== null;
  }
  get used(): boolean {
    return this.#used;
  }
  /** What a new Response or Request made from this one carries. */
  get source(): LiteBody | IncomingMessage {
    return this.#source;
  }

  stream(): ReadableStream<Uint8Array> | null {
    const s = this.#source;
    if (s === null || s === undefined) return null;
    if (s instanceof Readable) this.#source = Readable.toWeb(s) as ReadableStream<Uint8Array>;
    else if (typeof s === "string" || s instanceof Uint8Array || s instanceof ArrayBuffer) {
      const bytes = toBytes(s);
      this.#source = new ReadableStream<Uint8Array>({
        start(c) {
          if (bytes.length > 0) c.enqueue(bytes);
          c.close();
        },
      });
    }
    return this.#source as ReadableStream<Uint8Array>;
  }

  async bytes(): Promise<Uint8Array> {
    if (this.#used) throw new TypeError("Body is unusable: it has already been read");
    this.#used = true;
    const s = this.#source;
    if (s === null || s === undefined) return new Uint8Array(0);
    if (typeof s === "string" || s instanceof Uint8Array || s instanceof ArrayBuffer) return toBytes(s);
    const chunks: Uint8Array[] = [];
    if (s instanceof Readable) for await (const c of s) chunks.push(c as Uint8Array);
    else {
      const reader = s.getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
    }
    return Buffer.concat(chunks);
  }
}

function toBytes(s: string | Bytes): Uint8Array {
  return typeof s === "string" ? encoder.encode(s) : s instanceof ArrayBuffer ? new Uint8Array(s) : s;
}

/** What Response and Request share: the body and its readers. */
abstract class WithBody {
  protected abstract readonly content: Body;

  get body(): ReadableStream<Uint8Array> | null {
    return this.content.stream();
  }
  get bodyUsed(): boolean {
    return this.content.used;
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.content.bytes();
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }
  bytes(): Promise<Uint8Array> {
    return this.content.bytes();
  }
  async text(): Promise<string> {
    return decoder.decode(await this.content.bytes());
  }
  async json(): Promise<unknown> {
    return JSON.parse(await this.text()) as unknown;
  }
  blob(): Promise<never> {
    return Promise.reject(new TypeError("blob() is not available in bangerd's HTTP layer"));
  }
  formData(): Promise<never> {
    return Promise.reject(new TypeError("formData() is not available in bangerd's HTTP layer"));
  }
}

export interface LiteResponseInit {
  status?: number;
  statusText?: string;
  headers?: HeadersLike;
}

export class LiteResponse extends WithBody {
  protected readonly content: Body;
  readonly status: number;
  readonly statusText: string;
  readonly headers: LiteHeaders;
  readonly type = "default";
  readonly url = "";
  readonly redirected = false;

  constructor(body?: LiteBody, init: LiteResponseInit = {}) {
    super();
    this.content = new Body(body);
    this.status = init.status ?? 200;
    if (!Number.isInteger(this.status) || this.status < 200 || this.status > 599) throw new RangeError(`invalid response status ${this.status}`);
    this.statusText = init.statusText ?? "";
    this.headers = new LiteHeaders(init.headers);
    if (typeof body === "string" && !this.headers.has("content-type")) this.headers.set("content-type", "text/plain;charset=UTF-8");
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }
  /** The body as it was given (string, bytes or a web stream), for the listener to write without a copy. */
  get source(): LiteBody {
    return this.content.source as LiteBody;
  }
  clone(): never {
    throw new TypeError("clone() is not available in bangerd's HTTP layer");
  }
  static json(data: unknown, init: LiteResponseInit = {}): LiteResponse {
    const headers = new LiteHeaders(init.headers);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    return new LiteResponse(JSON.stringify(data), { ...init, headers });
  }
}

export interface LiteRequestInit {
  method?: string;
  headers?: HeadersLike;
  body?: LiteBody;
  signal?: AbortSignal | null;
  duplex?: "half";
}

export class LiteRequest extends WithBody {
  protected readonly content: Body;
  readonly url: string;
  readonly method: string;
  readonly headers: LiteHeaders;
  readonly signal: AbortSignal;

  constructor(input: string | LiteRequest, init: LiteRequestInit = {}) {
    super();
    const from = typeof input === "string" ? undefined : input;
    this.url = from ? from.url : new URL(input as string).href;
    this.method = (init.method ?? from?.method ?? "GET").toUpperCase();
    this.headers = new LiteHeaders(init.headers ?? from?.headers);
    this.signal = init.signal ?? from?.signal ?? new AbortController().signal;
    this.content = new Body(init.body !== undefined ? init.body : (from?.content.source ?? null));
  }

  /** The request node:http received; its body is read only when a handler asks for it. */
  static fromIncoming(incoming: IncomingMessage, url: string, signal: AbortSignal): LiteRequest {
    const headers: [string, string][] = [];
    const raw = incoming.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) headers.push([raw[i], raw[i + 1]]);
    const bodyless = incoming.method === "GET" || incoming.method === "HEAD";
    return new LiteRequest(url, { method: incoming.method, headers, signal, body: bodyless ? null : (incoming as unknown as LiteBody) });
  }
}
