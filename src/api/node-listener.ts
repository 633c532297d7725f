import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { LiteHeaders, LiteRequest, LiteResponse } from "./fetch-lite.js";

/** The second argument Hono hands handlers as `c.env`: the node:http pair, as @hono/node-server passes it. */
export interface NodeBindings {
  incoming: IncomingMessage;
  outgoing: ServerResponse;
}

type FetchHandler = (req: Request, env: NodeBindings) => Response | Promise<Response>;

let installed = false;

/**
 * Makes `Headers`, `Request` and `Response` the light ones of src/api/fetch-lite.ts in this
 * process, before anything touches Node's (whose first use loads its internal undici). Hono
 * builds every answer with the global constructors. Only bangerd calls this: it makes no
 * outgoing fetch() calls, and the CLI and the tests keep Node's.
 */
export function installLiteFetchGlobals(): void {
  if (installed) return;
  installed = true;
  for (const [name, value] of [
    ["Headers", LiteHeaders],
    ["Request", LiteRequest],
    ["Response", LiteResponse],
  ] as const) {
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  }
}

const DEFAULT_CONTENT_TYPE = "text/plain; charset=UTF-8";

function outgoingHeaders(h: LiteHeaders, hasBody: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of h) {
    if (k === "set-cookie") out[k] = [...((out[k] as string[] | undefined) ?? []), v];
    else out[k] = v;
  }
  if (hasBody && out["content-type"] === undefined) out["content-type"] = DEFAULT_CONTENT_TYPE;
  return out;
}

/** The request's absolute URL, as Hono parses it; a target that is not a path is refused. */
function requestUrl(incoming: IncomingMessage): string | undefined {
  const target = incoming.url ?? "";
  if (!target.startsWith("/")) return undefined;
  const host = incoming.headers.host ?? "localhost";
  try {
    return new URL(`http://${host}${target}`).href;
  } catch {
    return undefined;
  }
}

async function writeStream(stream: ReadableStream<Uint8Array>, outgoing: ServerResponse): Promise<void> {
  const reader = stream.getReader();
  // A client that leaves cancels the stream: SSE and NDJSON producers see it and stop.
  const cancel = () => void reader.cancel().catch(() => undefined);
  outgoing.once("close", cancel);
  try {
    outgoing.flushHeaders();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      if (!outgoing.write(r.value)) await new Promise<void>((resolve) => outgoing.once("drain", resolve).once("close", resolve));
      if (outgoing.destroyed) break;
    }
  } finally {
    outgoing.off("close", cancel);
    if (!outgoing.destroyed) outgoing.end();
  }
}

function plain(outgoing: ServerResponse, status: number, text: string): void {
  if (outgoing.headersSent) {
    outgoing.destroy();
    return;
  }
  outgoing.writeHead(status, { "content-type": DEFAULT_CONTENT_TYPE, "content-length": Buffer.byteLength(text) });
  outgoing.end(text);
}

/**
 * Serves a Hono app's fetch handler over node:http, in place of @hono/node-server, with the light
 * Fetch objects above: the request's signal aborts when the client goes away before its answer is
 * complete, string and byte bodies are written in one piece with their length, streamed bodies
 * are written as they come (chunked) and cancelled when the client leaves. A body the handler did
 * not read is drained, or cut off with the connection when the answer said `Connection: close`.
 */
export function honoListener(fetch: FetchHandler): (incoming: IncomingMessage, outgoing: ServerResponse) => Promise<void> {
  installLiteFetchGlobals();
  return async (incoming, outgoing) => {
    const url = requestUrl(incoming);
    if (!url) return plain(outgoing, 400, "Bad Request");
    const abort = new AbortController();
    outgoing.once("close", () => {
      if (!outgoing.writableFinished) abort.abort(new Error("the client closed the connection"));
    });
    let res: LiteResponse;
    try {
      res = (await fetch(LiteRequest.fromIncoming(incoming, url, abort.signal) as unknown as Request, { incoming, outgoing })) as unknown as LiteResponse;
    } catch {
      return plain(outgoing, 500, "Internal Server Error");
    }
    if (!(res instanceof LiteResponse)) return plain(outgoing, 500, "Internal Server Error");
    if (incoming.method !== "GET" && incoming.method !== "HEAD" && !incoming.readableEnded) {
      outgoing.once("finish", () => {
        if (!incoming.readableEnded) incoming.resume();
      });
    }
    const body = res.source;
    const headers = outgoingHeaders(res.headers, body !== null && body !== undefined);
    try {
      if (body === null || body === undefined) {
        outgoing.writeHead(res.status, headers);
        outgoing.end();
      } else if (typeof body === "string" || body instanceof Uint8Array || body instanceof ArrayBuffer) {
        const bytes = typeof body === "string" ? Buffer.from(body) : body instanceof ArrayBuffer ? new Uint8Array(body) : body;
        if (headers["content-length"] === undefined && headers["transfer-encoding"] === undefined) headers["content-length"] = bytes.byteLength;
        outgoing.writeHead(res.status, headers);
        outgoing.end(bytes);
      } else {
        outgoing.writeHead(res.status, headers);
        await writeStream(body, outgoing);
      }
    } catch {
      if (!outgoing.destroyed) outgoing.destroy();
    }
  };
}
