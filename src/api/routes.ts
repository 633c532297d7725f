import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AppDeps } from "../app/deps.js";
import { createVm } from "../app/create.js";
import { runDoctor } from "../app/doctor.js";
import { ImageService } from "../app/images.js";
import { imageStoreRoutes } from "./image-store-routes.js";
import { removeVm, startVm, stopVm, vmEvents } from "../app/lifecycle.js";
import { getVm, listVms } from "../app/vm-lookup.js";
import { sshTarget } from "../app/vm-ready.js";
import { BangerError } from "../domain/errors.js";
import { VERSION } from "../version.js";
import { buildRoute } from "./build-route.js";
import { accessRoutes } from "./access-routes.js";
import { snapshotRoutes } from "./snapshot-route.js";
import { errorResponse } from "./errors.js";
import { ROOT_CALLER, requireMember, requireOwner, requireRoot, type Caller } from "../domain/caller.js";
import { vmFiles } from "../app/vm-files.js";
import type { ApiEnv } from "./env.js";
import { createVmBody, forwardBody, promoteBody, registerImageBody, startVmBody } from "./schemas.js";
import { addPort, listPorts, removePort } from "../app/vm-net.js";
import type { EventBus } from "../app/event-bus.js";
import type { Check } from "../app/doctor.js";
import { liveRoutes, type HostInfo } from "./live-routes.js";
import { requireReachable } from "../domain/vm-reach.js";

const MAX_LOG_CHUNK = 256 * 1024;
/** Every request body is a small JSON object; anything larger is refused before it is buffered. */
export const MAX_BODY_BYTES = 1024 * 1024;

async function body(c: { req: { json(): Promise<unknown> } }): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new BangerError("BAD_REQUEST", "request body is not valid JSON", { hint: "send Content-Type: application/json with a JSON object" });
  }
}

export interface ApiHooks {
  shutdown(): void;
  /** Who is calling, from the connection (src/adapters/peer); without it every caller is root (in-process tests, the web UI's session). */
  identify?(env: unknown): Promise<Caller>;
  /** The group allowed on the socket (api_group) and its gid; undefined gid = root only. Absent: no group rule (browser flavour). */
  apiGroup?: { name: string; gid?: number };
  bus?: EventBus;
  host?: HostInfo;
  /** Socket flavour only: a one-time login link for the web UI (`banger web`); absent when the UI is off. */
  webLogin?: () => { url: string; expiresAt: string };
  /** Doctor checks of listeners the daemon runs beside the API (the metrics listener). */
  checks?: () => Check;
  /** The browser flavour has no shutdown and no login-link route: those need the Unix socket. */
  flavour?: "socket" | "browser";
}

export function apiRoutes(d: AppDeps, hooks: ApiHooks): Hono<ApiEnv> {
  const images = new ImageService(d);
  const api = new Hono<ApiEnv>();
  api.onError((err, c) => errorResponse(c, err));
  api.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => {
        // The rest of the body is never read: the connection cannot carry another request.
        c.header("Connection", "close");
        throw new BangerError("BODY_TOO_LARGE", `request body is larger than ${MAX_BODY_BYTES} bytes`, {
          hint: "API bodies are small JSON objects (docs/api.md); files are passed by path, not content",
        });
      },
    }),
  );
  // Who is calling, once per request; outsiders of the API group stop here.
  api.use("*", async (c, next) => {
    const caller = hooks.identify ? await hooks.identify(c.env) : ROOT_CALLER;
    if (hooks.apiGroup) requireMember(caller, hooks.apiGroup.gid, hooks.apiGroup.name);
    c.set("caller", caller);
    await next();
  });
  const rootOnly = (what: string) => async (c: { get(k: "caller"): Caller }, next: () => Promise<void>) => {
    requireRoot(c.get("caller"), what);
    await next();
  };
  const ownedVm = (c: { get(k: "caller"): Caller; req: { param(k: "name"): string } }, what: string) => {
    const vm = getVm(d, c.req.param("name"));
    requireOwner(c.get("caller"), vm, what);
    return vm;
  };
  api.notFound((c) => errorResponse(c, new BangerError("NOT_FOUND", `no route ${c.req.method} ${c.req.path}`, { hint: "docs/api.md lists the routes" })));

  api.get("/version", (c) => c.json({ version: VERSION, api: "v1", vmm: d.config.vmm, pid: process.pid, stateDir: d.config.hostCheck.stateDir }));

  api.get("/images", (c) => c.json({ images: images.list() }));
  api.on(["POST", "DELETE"], ["/images", "/images/*"], rootOnly("change images"));
  api.post("/shutdown", rootOnly("stop bangerd"));
  api.post("/images", async (c) => c.json({ image: await images.register(registerImageBody.parse(await body(c))) }, 201));
  buildRoute(api, d, images, body);
  snapshotRoutes(api, d, images);
  imageStoreRoutes(api, d, images, body);
  api.delete("/images/:name", async (c) => {
    await images.remove(c.req.param("name"));
    return c.json({ removed: c.req.param("name") });
  });
  api.post("/images/:name/promote", async (c) => {
    const { alias } = promoteBody.parse(await body(c));
    return c.json({ image: images.promote(c.req.param("name"), alias) });
  });

  api.post("/images/:name/warm", async (c) => c.json({ pool: await images.warm(c.req.param("name")) }));

  api.get("/vms", (c) => c.json({ vms: listVms(d).filter((vm) => c.req.query("mine") !== "true" || (vm.ownerUid ?? 0) === c.get("caller").uid) }));
  // A create or start is cancelled (and undone) when its client goes away: Ctrl-C in the CLI, a killed agent.
  api.post("/vms", async (c) => {
    const input = createVmBody.parse(await body(c));
    const caller = c.get("caller");
    // Peering opens the other VM to this one: only its owner (or root) may agree to that.
    for (const peer of input.peers ?? []) requireOwner(caller, getVm(d, peer), "peer with");
    return c.json({ vm: await createVm(d, { ...input, owner: { uid: caller.uid, name: caller.name } }, { signal: c.req.raw.signal }) }, 201);
  });
  api.get("/vms/:name", (c) => {
    const vm = getVm(d, c.req.param("name"));
    const operation = d.ops.current(vm.name);
    return c.json({ vm, events: d.store.events(vm.id), ...(operation ? { operation } : {}) });
  });
  api.post("/vms/:name/stop", async (c) => {
    ownedVm(c, "stop");
    return c.json({ vm: await stopVm(d, c.req.param("name")) });
  });
  api.post("/vms/:name/start", async (c) => {
    ownedVm(c, "start");
    return c.json({ vm: await startVm(d, c.req.param("name"), { ...startVmBody.parse(await body(c)), signal: c.req.raw.signal }) });
  });
  api.delete("/vms/:name", async (c) => {
    // A VM already gone is removeVm's answer (VM_NOT_FOUND, or a cancelled create); only an existing one has an owner.
    const vm = d.store.getVm(c.req.param("name"));
    if (vm) requireOwner(c.get("caller"), vm, "remove");
    return c.json(await removeVm(d, c.req.param("name"), c.req.query("force") === "true"));
  });
  api.get("/vms/:name/events", (c) => c.json({ events: vmEvents(d, c.req.param("name")) }));
  api.get("/vms/:name/ssh", async (c) => {
    const vm = ownedVm(c, "ssh into");
    requireReachable(vm, c.req.query("for") === "exec" ? "exec" : "ssh");
    return c.json({ target: await sshTarget(d, vm), knownHosts: await d.files.readText(vmFiles(vm.dir).knownHosts) });
  });
  api.get("/vms/:name/logs", async (c) => {
    const vm = ownedVm(c, "read the console of");
    // Reading what a VM printed is fine in any state; following it needs one that is still printing.
    if (c.req.query("follow") === "true") requireReachable(vm, "follow");
    // Offsets count from the VM's first console byte and survive rotation; one older than what is kept reads from `start`.
    const { offset, size, data, start } = await d.console.read(vm.dir, Number(c.req.query("offset") ?? 0) || 0, MAX_LOG_CHUNK);
    return c.json({ offset, size, data, start, running: vm.state === "running" });
  });

  api.get("/vms/:name/ports", (c) => c.json({ ports: listPorts(d, c.req.param("name")) }));
  api.post("/vms/:name/ports", async (c) => {
    ownedVm(c, "forward a port to");
    return c.json({ port: await addPort(d, c.req.param("name"), forwardBody.parse(await body(c))) }, 201);
  });
  api.delete("/vms/:name/ports/:port", async (c) => {
    ownedVm(c, "remove a port forward of");
    const port = Number(c.req.param("port"));
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new BangerError("BAD_REQUEST", `${JSON.stringify(c.req.param("port"))} is not a TCP port`);
    await removePort(d, c.req.param("name"), port, c.req.query("address") ?? undefined);
    return c.json({ removed: { vm: c.req.param("name"), hostAddress: c.req.query("address") ?? "127.0.0.1", hostPort: port } });
  });

  accessRoutes(api, d, ownedVm);
  api.get("/doctor", async (c) => {
    const report = await runDoctor(d, images);
    const extra = [hooks.host?.web(), hooks.checks?.()].filter((x): x is Check => x !== undefined);
    if (extra.length === 0) return c.json(report);
    const checks = [...report.checks, ...extra];
    return c.json({ checks, ok: checks.every((x) => x.status !== "FAIL") });
  });
  if (hooks.bus) liveRoutes(api, d, hooks.bus, hooks.host);
  if (hooks.flavour === "browser") return api;

  api.post("/shutdown", (c) => {
    setImmediate(() => hooks.shutdown());
    return c.json({ stopping: true });
  });
  // A browser session acts as root (the web token is root's), so only root may mint one.
  api.post("/web/login", rootOnly("open a web UI session"), (c) => {
    if (!hooks.webLogin) {
      throw new BangerError("NOT_FOUND", "the web UI is not serving", { hint: "`banger doctor` says why (web.enabled, web.listen, web.allow_remote)" });
    }
    return c.json(hooks.webLogin());
  });
  return api;
}
