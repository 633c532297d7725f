import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import type { Logger } from "pino";
import { SESSION_COOKIE, type WebAuth, readCookie } from "./auth.js";

/** What a proxy forwards to: a running VM's service. */
export interface GuestTarget {
  vmId: string;
  vmName: string;
  service: string;
  ip: string;
  port: number;
}

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Headers that never reach the guest: the browser sends the banger session cookie to every port
 * of this host (cookies ignore ports), and the guest is untrusted. Hop-by-hop headers go too.
 */
const TO_GUEST_DROP = new Set([
  "cookie",
  "authorization",
  "proxy-authorization",
  "x-csrf-token",
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
]);
/** A guest must not set cookies on this host (it could overwrite or fixate banger's session). */
const FROM_GUEST_DROP = new Set(["set-cookie", "connection", "keep-alive", "trailer"]);

function filtered(h: IncomingHttpHeaders, drop: Set<string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !drop.has(k)) out[k] = v;
  return out;
}

/**
 * One listener per open (VM, service), on the web listener's host and a port of its own: a
 * separate origin, so the guest's pages share no origin with the UI. Requests need the banger
 * session (checked, then stripped); nothing the guest answers can set a cookie. Closed when the
 * VM leaves `running`, and with the web listener.
 */
export class GuestProxies {
  private readonly open = new Map<string, { server: Server; port: Promise<number> | undefined; vmId: string }>();

  constructor(private readonly o: { host: string; auth: WebAuth; log: Logger }) {}

  /** The proxy's URL for this host name; one listener per VM and service, made on first ask. */
  async ensure(t: GuestTarget, hostname: string): Promise<string> {
    const key = `${t.vmId}/${t.service}`;
    let p = this.open.get(key);
    if (!p) {
      // Registered before it listens, so two clicks at once share one listener.
      p = { server: this.serve(t), port: undefined, vmId: t.vmId };
      this.open.set(key, p);
      const entry = p;
      entry.port = new Promise<number>((resolve, reject) => {
        entry.server.once("error", reject);
        entry.server.listen(0, this.o.host, () => resolve((entry.server.address() as { port: number }).port));
      });
      entry.port.then(
        (port) => this.o.log.info({ vm: t.vmName, stage: "web-proxy", service: t.service, port }, "guest service proxy open"),
        () => this.open.delete(key),
      );
    }
    return `http://${hostname}:${await p.port!}/`;
  }

  private serve(t: GuestTarget): Server {
    const server = createServer((req, res) => {
      if (!this.authorised(req)) {
        res.writeHead(401, { "content-type": "text/plain; charset=utf-8" }).end("Open this service from the banger web UI.\n");
        return;
      }
      const up = request(
        { host: t.ip, port: t.port, method: req.method, path: req.url, headers: filtered(req.headers, TO_GUEST_DROP), timeout: CONNECT_TIMEOUT_MS },
        (g) => {
          res.writeHead(g.statusCode ?? 502, filtered(g.headers, FROM_GUEST_DROP));
          g.pipe(res);
        },
      );
      // The connect timeout only: a streaming answer (SSE) may idle for long.
      up.on("socket", (s) => s.once("connect", () => up.setTimeout(0)));
      up.on("timeout", () => up.destroy(new Error(`no connection to ${t.ip}:${t.port} in ${CONNECT_TIMEOUT_MS} ms`)));
      up.on("error", (e) => {
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain; charset=utf-8" });
        res.end(`${t.service} on ${t.vmName} did not answer: ${e.message}\n`);
      });
      req.pipe(up);
    });
    server.on("upgrade", (req, socket: Socket, head: Buffer) => this.upgrade(t, req, socket, head));
    return server;
  }

  /** Close every proxy of a VM (it stopped or went away). */
  closeVm(vmId: string): void {
    for (const [key, p] of this.open) {
      if (p.vmId !== vmId) continue;
      this.open.delete(key);
      p.server.close();
      p.server.closeAllConnections();
    }
  }

  closeAll(): void {
    for (const p of this.open.values()) {
      p.server.close();
      p.server.closeAllConnections();
    }
    this.open.clear();
  }

  private authorised(req: IncomingMessage): boolean {
    return this.o.auth.session(readCookie(req.headers.cookie, SESSION_COOKIE)) !== undefined;
  }

  /** WebSocket and other upgrades: the same header rules, then bytes both ways. */
  private upgrade(t: GuestTarget, req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (!this.authorised(req)) {
      socket.end("HTTP/1.1 401 Unauthorized\r\nconnection: close\r\n\r\n");
      return;
    }
    const g = connect({ host: t.ip, port: t.port, timeout: CONNECT_TIMEOUT_MS }, () => {
      g.setTimeout(0);
      const headers = filtered(req.headers, new Set([...TO_GUEST_DROP].filter((h) => h !== "connection")));
      const lines = Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}: ${x}`) : [`${k}: ${v}`]));
      g.write(`${req.method} ${req.url} HTTP/1.1\r\n${lines.join("\r\n")}\r\n\r\n`);
      if (head.length) g.write(head);
      // The guest's answer head loses its Set-Cookie lines like any other answer; then raw bytes.
      let buf = Buffer.alloc(0);
      const onHead = (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) {
          if (buf.length > 64 * 1024) g.destroy();
          return;
        }
        g.off("data", onHead);
        const headLines = buf
          .subarray(0, end)
          .toString("latin1")
          .split("\r\n")
          .filter((l) => !/^set-cookie:/i.test(l));
        socket.write(headLines.join("\r\n") + "\r\n\r\n");
        socket.write(buf.subarray(end + 4));
        g.pipe(socket);
        socket.pipe(g);
      };
      g.on("data", onHead);
    });
    const end = () => {
      g.destroy();
      socket.destroy();
    };
    g.on("timeout", end);
    g.on("error", end);
    socket.on("error", end);
  }
}
