import { createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LiteResponse } from "../../src/api/fetch-lite.js";
import { honoListener } from "../../src/api/node-listener.js";

// Node's own classes, put back after: the listener replaces the globals for the whole process.
const saved = ["Headers", "Request", "Response"].map((k) => [k, Object.getOwnPropertyDescriptor(globalThis, k)!] as const);

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

let server: Server;
let port: number;
let sseAborted: Promise<string>;

function call(method: string, path: string, opts: { body?: string; chunks?: string[]; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method, path, agent: false, headers: opts.headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    if (opts.chunks) {
      for (const c of opts.chunks) req.write(c);
      req.end();
    } else req.end(opts.body);
  });
}

beforeAll(async () => {
  const app = new Hono();
  app.onError((e, c) => c.json({ error: e.message }, 500));
  app.use("*", bodyLimit({ maxSize: 64, onError: (c) => c.json({ error: "too large" }, 413) }));
  app.post("/echo", async (c) => c.json({ got: await c.req.json(), method: c.req.method, q: c.req.query("q") ?? null }, 201));
  app.get("/cookies", (c) => {
    c.header("Set-Cookie", "a=1", { append: true });
    c.header("Set-Cookie", "b=2", { append: true });
    return c.text("two cookies");
  });
  app.get("/fail", () => {
    throw new Error("boom");
  });
  let resolveAbort: (why: string) => void;
  sseAborted = new Promise((r) => (resolveAbort = r));
  app.get("/events", (c) => {
    c.req.raw.signal.addEventListener("abort", () => resolveAbort("signal"));
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => resolveAbort("stream"));
      await stream.writeSSE({ event: "hello", data: "{}" });
      while (!stream.aborted) await stream.sleep(20);
    });
  });
  server = createServer(honoListener(app.fetch));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  for (const [k, d] of saved) Object.defineProperty(globalThis, k, d);
});

describe("Hono over node:http without Node's Fetch classes", () => {
  it("puts the light Response in place of the global one", () => {
    expect(new Response("x")).toBeInstanceOf(LiteResponse);
  });

  it("reads a JSON body and the query, and answers with the status, type and length", async () => {
    const r = await call("POST", "/echo?q=yes", { body: '{"a":1}', headers: { "content-type": "application/json" } });
    expect(r.status).toBe(201);
    expect(r.headers["content-type"]).toMatch(/^application\/json/);
    expect(Number(r.headers["content-length"])).toBe(Buffer.byteLength(r.body));
    expect(JSON.parse(r.body)).toEqual({ got: { a: 1 }, method: "POST", q: "yes" });
  });

  it("counts a chunked body as it reads it, and refuses it past the limit", async () => {
    const small = await call("POST", "/echo", { chunks: ['{"a":', "2}"] });
    expect(small.status).toBe(201);
    expect(JSON.parse(small.body).got).toEqual({ a: 2 });
    const big = await call("POST", "/echo", { chunks: [`{"a":"${"x".repeat(40)}`, `${"y".repeat(40)}"}`] });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body)).toEqual({ error: "too large" });
  });

  it("sends each Set-Cookie on its own", async () => {
    const r = await call("GET", "/cookies");
    expect(r.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(r.body).toBe("two cookies");
  });

  it("answers a throwing handler through the app's error handler", async () => {
    const r = await call("GET", "/fail");
    expect(r.status).toBe(500);
    expect(JSON.parse(r.body)).toEqual({ error: "boom" });
  });

  it("refuses a request target that is not a path", async () => {
    const r = await call("OPTIONS", "*");
    expect(r.status).toBe(400);
  });

  it("streams server-sent events and tells the handler when the client leaves", async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path: "/events", agent: false }, (res) => {
        expect(res.headers["content-type"]).toBe("text/event-stream");
        res.setEncoding("utf8");
        res.once("data", (d: string) => {
          resolve(d);
          req.destroy();
        });
      });
      req.on("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNRESET" ? undefined : reject(e)));
      req.end();
    });
    expect(first).toContain("event: hello");
    expect(["signal", "stream"]).toContain(await sseAborted);
  });
});
