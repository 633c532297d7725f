// The fake API server as one object: HTTP front, store, garbage collector, scheduler stand-in, test hooks.
// In-process: `await FakeKubeApiServer.start()`; as a process: main.ts.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import { type AddressInfo } from "node:net";
import { Api } from "./api.js";
import { discovery } from "./discovery.js";
import { GarbageCollector } from "./gc.js";
import { builtin } from "./resources.js";
import { type RouteOpts, readBody, resolve, route } from "./routes.js";
import { SwaggerSchemas } from "./schema.js";
import { Scheduler } from "./scheduler.js";
import { ApiError } from "./status.js";
import { Store } from "./store.js";
import { type KObj, type ResourceType } from "./types.js";
import { Watches } from "./watch.js";

export interface FakeKubeOptions {
  host?: string;
  port?: number;
  /** When set, every request must carry `Authorization: Bearer <token>` (401 otherwise). */
  token?: string;
  historyLimit?: number;
  bookmarkIntervalMs?: number;
  defaultWatchTimeoutSeconds?: number;
  /** Run the kube-scheduler stand-in (default true). */
  scheduler?: boolean;
  /** Check every built-in body the fake returns against the swagger (default true); failures land in selfCheckFailures. */
  selfCheck?: boolean;
}

const ctx = () => ({ fieldValidation: "Strict" as const, warnings: [] as string[] });

export class FakeKubeApiServer {
  readonly store: Store;
  readonly api: Api;
  readonly gc: GarbageCollector;
  readonly scheduler?: Scheduler;
  readonly watches: Watches;
  /** Response bodies that did not fit the real API's definitions: a bug in the fake, asserted empty by tests. */
  readonly selfCheckFailures: string[] = [];
  private http?: Server;
  url = "";

  private constructor(
    private readonly opts: FakeKubeOptions,
    swagger: SwaggerSchemas,
  ) {
    this.store = new Store({ historyLimit: opts.historyLimit });
    this.api = new Api(this.store, swagger);
    for (const ns of ["default", "kube-system", "kube-public", "kube-node-lease"])
      this.api.create(builtin("namespaces"), undefined, { metadata: { name: ns } }, ctx());
    this.gc = new GarbageCollector(this.api);
    if (opts.scheduler !== false) this.scheduler = new Scheduler(this.api);
    this.watches = new Watches(this.api);
    if (opts.selfCheck !== false) this.watches.onEvent = (rt, _type, obj) => this.selfCheck(rt, obj);
  }

  static async start(opts: FakeKubeOptions = {}, swagger = new SwaggerSchemas()): Promise<FakeKubeApiServer> {
    const s = new FakeKubeApiServer(opts, swagger);
    s.http = createServer((req, res) => void s.handle(req, res));
    await new Promise<void>((ok, fail) => {
      s.http!.once("error", fail);
      s.http!.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => ok());
    });
    const addr = s.http.address() as AddressInfo;
    const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    s.url = `http://${host}:${addr.port}`;
    return s;
  }

  async close(): Promise<void> {
    this.scheduler?.stop();
    this.gc.stop();
    this.watches.closeAll();
    if (!this.http) return;
    this.http.closeAllConnections();
    await new Promise<void>((ok) => this.http!.close(() => ok()));
  }

  /** Faults found by the fake's own controllers (scheduler, GC) plus self-check failures; tests assert none. */
  problems(): string[] {
    return [...this.selfCheckFailures, ...this.gc.errors, ...(this.scheduler?.errors ?? [])];
  }

  // ---- test hooks ----
  compact(revision?: number): void {
    this.store.compact(revision);
  }

  /** Sets a Pod's phase (Running, Succeeded, Failed) as a kubelet would; the fake never runs containers itself. */
  setPodPhase(ns: string, name: string, phase: string): KObj {
    const rt = builtin("pods");
    const pod = this.api.get(rt, ns, name);
    const conds = ((pod.status?.conditions ?? []) as { type: string }[]).filter((c) => c.type !== "Ready");
    conds.push({
      type: "Ready",
      status: phase === "Running" ? "True" : "False",
      lastProbeTime: null,
      lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    } as never);
    return this.api.update(rt, ns, name, { ...pod, status: { ...pod.status, phase, conditions: conds } }, ctx(), "status");
  }

  private selfCheck(rt: ResourceType | undefined, body: unknown): void {
    const kind = (body as { kind?: string } | null)?.kind;
    if (!kind) return;
    let def: string | undefined;
    if (kind === "Status") def = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
    else if (rt?.definition && kind === rt.kind) def = rt.definition;
    else if (rt?.definition && kind === `${rt.kind}List`) def = `${rt.definition}List`;
    if (!def) return;
    for (const f of this.api.admission.checkResponse(def, body)) this.selfCheckFailures.push(`${kind}: ${f}`);
  }

  private hook(path: string, body: any): unknown {
    if (path === "/_fake/compact") {
      this.compact(body?.revision);
      return { compactedThrough: this.store.oldestWatchable };
    }
    if (path === "/_fake/bookmark") return (this.watches.bookmarkAll(), { watches: this.watches.count });
    if (path === "/_fake/close-watches") return (this.watches.closeAll(), {});
    if (path === "/_fake/problems") return { problems: this.problems() };
    const m = /^\/_fake\/pods\/([^/]+)\/([^/]+)\/phase$/.exec(path);
    if (m) return this.setPodPhase(m[1], m[2], String(body?.phase));
    throw new ApiError(404, "NotFound", "no such test hook");
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const send = (code: number, body: unknown, warnings: string[] = [], rt?: ResourceType) => {
      if (this.opts.selfCheck !== false) this.selfCheck(rt, body);
      const headers: Record<string, string | string[]> = { "Content-Type": "application/json" };
      if (warnings.length) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
      res.writeHead(code, headers);
      res.end(JSON.stringify(body));
    };
    let rt: ResourceType | undefined;
    try {
      if (this.opts.token && req.headers.authorization !== `Bearer ${this.opts.token}`) throw new ApiError(401, "Unauthorized", "Unauthorized");
      const path = url.pathname.replace(/\/+$/, "") || "/";
      if (path === "/healthz" || path === "/readyz" || path === "/livez") {
        res.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
        return;
      }
      if (path.startsWith("/_fake/")) {
        if (req.method !== "POST" && path !== "/_fake/problems") throw new ApiError(405, "MethodNotAllowed", "test hooks take POST");
        return send(200, this.hook(path, await readBody(req)));
      }
      const target = resolve(this.api, path);
      if (!target) {
        const doc = req.method === "GET" ? discovery(this.api.registry, path, `${req.socket.localAddress}:${req.socket.localPort}`) : undefined;
        if (doc === undefined) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
        return send(200, doc);
      }
      rt = target.rt;
      const reply = await route(this.api, this.watches, target, req, res, url.searchParams, this.routeOpts());
      if (reply) send(reply.code, reply.body, reply.warnings, rt);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, "InternalError", `Internal error occurred: ${(e as Error).stack ?? String(e)}`);
      if (err.code === 500) console.error("fake kube-apiserver:", e);
      if (res.headersSent) res.end();
      else send(err.code, err.body(), [], rt);
    }
  }

  private routeOpts(): RouteOpts {
    return { bookmarkIntervalMs: this.opts.bookmarkIntervalMs ?? 5000, defaultWatchTimeoutSeconds: this.opts.defaultWatchTimeoutSeconds ?? 1800 };
  }
}
