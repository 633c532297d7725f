import type { Context, Hono } from "hono";
import type { AppDeps } from "../app/deps.js";
import { serviceAccess } from "../app/vm-access.js";
import type { Vm } from "../domain/types.js";
import type { ApiEnv } from "./env.js";

/** Routes about who may reach what: a VM's service endpoints and, for its owner, their password. */
export function accessRoutes(api: Hono<ApiEnv>, d: AppDeps, ownedVm: (c: Context<ApiEnv>, what: string) => Vm): void {
  api.get("/vms/:name/access", async (c) => {
    const vm = ownedVm(c, "read the service password of");
    return c.json({ services: await serviceAccess(d, vm, c.req.query("secret") === "true") });
  });
}
