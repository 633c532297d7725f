import type { Hono } from "hono";
import type { AppDeps } from "../app/deps.js";
import type { ExternalVms } from "../app/external-vms.js";
import { nodeInfo } from "../app/node-info.js";
import { BangerError } from "../domain/errors.js";
import { requireOwner } from "../domain/caller.js";
import type { ApiEnv } from "./env.js";
import { createVmBody } from "./schemas.js";

const externalBody = createVmBody.omit({ cold: true });

function notFound(id: string): BangerError {
  return new BangerError("VM_NOT_FOUND", `no VM has external id ${id}`, { hint: `PUT /v1/vms/by-external-id/${id} creates it` });
}

/**
 * The idempotent half of the API (docs/api.md "By external id" and "Node"): what a fleet controller,
 * the node agent, or any caller that retries needs. PUT creates once per id, whatever the retries.
 */
export function remoteRoutes(
  api: Hono<ApiEnv>,
  d: Pick<AppDeps, "store" | "host" | "config" | "diskPool" | "vmPool" | "network">,
  external: ExternalVms,
  body: (c: { req: { json(): Promise<unknown> } }) => Promise<unknown>,
): void {
  api.get("/node", (c) => c.json({ node: nodeInfo(d) }));

  api.put("/vms/by-external-id/:id", async (c) => {
    const { name, noWait, ...spec } = externalBody.parse(await body(c));
    const caller = c.get("caller");
    for (const peer of spec.peers ?? []) {
      const other = d.store.getVm(peer);
      if (other) requireOwner(caller, other, "peer with");
    }
    const { vm, created } = await external.ensure(c.req.param("id"), spec, { name, noWait, owner: { uid: caller.uid, name: caller.name } });
    return c.json({ vm, created }, created ? 201 : 200);
  });

  api.get("/vms/by-external-id/:id", (c) => {
    const vm = external.get(c.req.param("id"));
    if (!vm) {
      if (external.creating(c.req.param("id"))) return c.json({ creating: true }, 202);
      throw notFound(c.req.param("id"));
    }
    return c.json({ vm, events: d.store.events(vm.id) });
  });

  api.delete("/vms/by-external-id/:id", async (c) => {
    const vm = external.get(c.req.param("id"));
    if (vm) requireOwner(c.get("caller"), vm, "remove");
    return c.json({ removed: (await external.remove(c.req.param("id"))).removed ?? null });
  });
}
