import { Hono } from "hono";
import type { AppDeps } from "../app/deps.js";
import { createVm } from "../app/create.js";
import { runDoctor } from "../app/doctor.js";
import { ImageService } from "../app/images.js";
import { removeVm, startVm, stopVm, vmEvents } from "../app/lifecycle.js";
import { getVm, listVms } from "../app/vm-lookup.js";
import { sshTarget } from "../app/vm-ready.js";
import { BangerError } from "../domain/errors.js";
import { VERSION } from "../version.js";
import { buildRoute } from "./build-route.js";
import { snapshotRoutes } from "./snapshot-route.js";
import { errorResponse } from "./errors.js";
import { createVmBody, promoteBody, registerImageBody, startVmBody } from "./schemas.js";

const MAX_LOG_CHUNK = 256 * 1024;

async function body(c: { req: { json(): Promise<unknown> } }): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new BangerError("BAD_REQUEST", "request body is not valid JSON", { hint: "send Content-Type: application/json with a JSON object" });
  }
}

export function apiRoutes(d: AppDeps, hooks: { shutdown(): void }): Hono {
  const images = new ImageService(d);
  const api = new Hono();
  api.onError((err, c) => errorResponse(c, err));
  api.notFound((c) => errorResponse(c, new BangerError("NOT_FOUND", `no route ${c.req.method} ${c.req.path}`, { hint: "docs/api.md lists the routes" })));

  api.get("/version", (c) => c.json({ version: VERSION, api: "v1", vmm: d.config.vmm, pid: process.pid, stateDir: d.config.hostCheck.stateDir }));

  api.get("/images", (c) => c.json({ images: images.list() }));
  api.post("/images", async (c) => c.json({ image: await images.register(registerImageBody.parse(await body(c))) }, 201));
  buildRoute(api, d, images, body);
  snapshotRoutes(api, d, images);
  api.delete("/images/:name", async (c) => {
    await images.remove(c.req.param("name"));
    return c.json({ removed: c.req.param("name") });
  });
  api.post("/images/:name/promote", async (c) => {
    const { alias } = promoteBody.parse(await body(c));
    return c.json({ image: images.promote(c.req.param("name"), alias) });
  });

  api.post("/images/:name/warm", async (c) => c.json({ pool: await images.warm(c.req.param("name")) }));

  api.get("/vms", (c) => c.json({ vms: listVms(d) }));
  // A create or start is cancelled (and undone) when its client goes away: Ctrl-C in the CLI, a killed agent.
  api.post("/vms", async (c) => c.json({ vm: await createVm(d, createVmBody.parse(await body(c)), { signal: c.req.raw.signal }) }, 201));
  api.get("/vms/:name", (c) => {
    const vm = getVm(d, c.req.param("name"));
    const operation = d.ops.current(vm.name);
    return c.json({ vm, events: d.store.events(vm.id), ...(operation ? { operation } : {}) });
  });
  api.post("/vms/:name/stop", async (c) => c.json({ vm: await stopVm(d, c.req.param("name")) }));
  api.post("/vms/:name/start", async (c) => {
    return c.json({ vm: await startVm(d, c.req.param("name"), { ...startVmBody.parse(await body(c)), signal: c.req.raw.signal }) });
  });
  api.delete("/vms/:name", async (c) => c.json(await removeVm(d, c.req.param("name"), c.req.query("force") === "true")));
  api.get("/vms/:name/events", (c) => c.json({ events: vmEvents(d, c.req.param("name")) }));
  api.get("/vms/:name/ssh", async (c) => c.json({ target: await sshTarget(d, getVm(d, c.req.param("name"))) }));
  api.get("/vms/:name/logs", async (c) => {
    const vm = getVm(d, c.req.param("name"));
    // Offsets count from the VM's first console byte and survive rotation; one older than what is kept reads from `start`.
    const { offset, size, data, start } = await d.console.read(vm.dir, Number(c.req.query("offset") ?? 0) || 0, MAX_LOG_CHUNK);
    return c.json({ offset, size, data, start, running: vm.state === "running" });
  });

  api.get("/doctor", async (c) => c.json(await runDoctor(d, images)));
  api.post("/shutdown", (c) => {
    setImmediate(() => hooks.shutdown());
    return c.json({ stopping: true });
  });
  return api;
}
