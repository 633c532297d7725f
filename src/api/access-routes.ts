import type { Hono } from "hono";
import type { AppDeps } from "../app/deps.js";
import { serviceAccess } from "../app/vm-access.js";
import { getVm } from "../app/vm-lookup.js";

/** Routes about who may reach what: a VM's service endpoints and, on request, their password. */
export function accessRoutes(api: Hono, d: AppDeps): void {
  api.get("/vms/:name/access", async (c) => {
    const vm = getVm(d, c.req.param("name"));
    return c.json({ services: await serviceAccess(d, vm, c.req.query("secret") === "true") });
  });
}
