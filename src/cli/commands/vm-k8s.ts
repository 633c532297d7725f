// `banger --context NAME vm create|ls|rm` on a Kubernetes cluster (docs/scale-out.md): the same
// flags and output shape as on one host, through MicroVM objects on the API server. Imported only
// with --context, so the local CLI never loads the Kubernetes client.
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type KubeClients, MVM, clusterError, kubeClients, statusOf } from "../../adapters/k8s/client.js";
import { loadKube } from "../../adapters/k8s/kubeconfig.js";
import type { MicroVmObject } from "../../adapters/k8s/objects.js";
import { BangerError } from "../../domain/errors.js";
import { MICROVM_GROUP, MICROVM_KIND, MICROVM_VERSION } from "../../domain/microvm.js";
import type { CliContext } from "../context.js";
import { table } from "../output.js";

interface Target {
  clients: KubeClients;
  namespace: string;
  context: string;
}

const POLL_MS = 500;

async function target(ctx: CliContext, name: string): Promise<Target> {
  if (name === "k8s") {
    const { kc, namespace } = loadKube({});
    return { clients: kubeClients(kc), namespace, context: name };
  }
  const entry = (await ctx.cfg()).config.contexts?.[name];
  if (!entry)
    throw new BangerError("INVALID_CONFIG", `no context named ${name}`, {
      hint: `use --context k8s (the default kubeconfig), or add [contexts.${name}] with kubeconfig = "FILE" to the config (docs/config.md)`,
    });
  const { kc, namespace } = loadKube({ kubeconfig: entry.kubeconfig, context: entry.kube_context });
  return { clients: kubeClients(kc), namespace: entry.namespace ?? namespace, context: name };
}

function portsOf(specs: string[] | undefined): string[] | undefined {
  return specs?.map((s) => {
    if (!/^\d{1,5}:\d{1,5}$/.test(s))
      throw new BangerError("BAD_REQUEST", `-p ${s}: a MicroVM's forward is hostport:guestport`, {
        hint: "drop the address: the node listens on its own address (docs/scale-out.md)",
        field: "ports",
      });
    return s;
  });
}

export interface CreateOpts {
  image: string;
  name?: string;
  nat?: boolean;
  vcpus?: number;
  memory?: number;
  publish?: string[];
  peers?: string;
  wait?: boolean;
  timeout?: number;
}

export async function k8sCreate(ctx: CliContext, context: string, o: CreateOpts): Promise<void> {
  const t = await target(ctx, context);
  const name = o.name ?? `vm-${randomBytes(3).toString("hex")}`;
  const peers = o.peers
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const body = {
    apiVersion: `${MICROVM_GROUP}/${MICROVM_VERSION}`,
    kind: MICROVM_KIND,
    metadata: { name, namespace: t.namespace },
    spec: { image: o.image, vcpus: o.vcpus ?? 2, memoryMib: o.memory ?? 1024, nat: Boolean(o.nat), ports: portsOf(o.publish), peers },
  };
  const t0 = performance.now();
  try {
    await t.clients.custom.createNamespacedCustomObject({ ...MVM, namespace: t.namespace, body });
  } catch (e) {
    if (statusOf(e) === 409) throw new BangerError("VM_EXISTS", `a MicroVM named ${name} exists in ${t.namespace}`, { hint: "pick another --name" });
    if (statusOf(e) === 422) throw new BangerError("BAD_REQUEST", `the API server refused the MicroVM: ${clusterError("", e).message.replace(/^: /, "")}`);
    throw clusterError(`creating MicroVM ${t.namespace}/${name}`, e);
  }
  let vm = await get(t, name);
  if (o.wait !== false) {
    // Until the node agent reports it running (or failed); the deadline bounds only this wait.
    const end = Date.now() + (o.timeout ?? 600) * 1000;
    while (vm && vm.status?.phase !== "Running" && vm.status?.phase !== "Failed") {
      if (Date.now() > end)
        throw new BangerError("TIMEOUT", `MicroVM ${name} is ${vm.status?.phase ?? "not yet placed"} after ${o.timeout ?? 600} s`, {
          hint: `it stays; see \`banger --context ${context} vm ls\` or kubectl describe microvm ${name}`,
        });
      await sleep(POLL_MS);
      vm = await get(t, name);
    }
    if (vm?.status?.phase === "Failed")
      throw new BangerError("VMM_FAILED", `MicroVM ${name} failed on node ${vm.status.node ?? "?"}: ${vm.status.lastError ?? "no reason given"}`);
  }
  const s = vm?.status ?? {};
  const took = `${((performance.now() - t0) / 1000).toFixed(1)} s`;
  ctx.out(
    o.wait === false
      ? `submitted ${name} to ${t.context} (namespace ${t.namespace}); watch it with \`banger --context ${context} vm ls\``
      : `created ${name} (${s.ip ?? "?"}) on node ${s.node ?? "?"} in ${took}`,
    { vm },
  );
}

async function get(t: Target, name: string): Promise<MicroVmObject | undefined> {
  try {
    return (await t.clients.custom.getNamespacedCustomObject({ ...MVM, namespace: t.namespace, name })) as MicroVmObject;
  } catch (e) {
    if (statusOf(e) === 404) return undefined;
    throw clusterError(`reading MicroVM ${t.namespace}/${name}`, e);
  }
}

export async function k8sList(ctx: CliContext, context: string): Promise<void> {
  const t = await target(ctx, context);
  let items: MicroVmObject[];
  try {
    items = ((await t.clients.custom.listNamespacedCustomObject({ ...MVM, namespace: t.namespace })) as { items: MicroVmObject[] }).items;
  } catch (e) {
    throw clusterError(`listing MicroVMs in ${t.namespace}`, e);
  }
  ctx.out(
    () =>
      items.length === 0
        ? `no MicroVMs in ${t.namespace}; create one with \`vm create --image debian\` and the same --context`
        : table(
            ["NAME", "PHASE", "NODE", "IMAGE", "IP", "VCPUS", "MEMORY", "NAT", "CREATED"],
            items.map((x) => [
              x.metadata.name,
              x.metadata.deletionTimestamp ? "Deleting" : (x.status?.phase ?? "Pending"),
              x.status?.node,
              x.spec.image,
              x.status?.ip,
              x.spec.vcpus,
              `${x.spec.memoryMib}M`,
              x.spec.nat ? "yes" : "no",
              x.metadata.creationTimestamp?.slice(0, 19).replace("T", " "),
            ]),
          ),
    { vms: items },
  );
}

export async function k8sRemove(ctx: CliContext, context: string, name: string, o: { wait?: boolean; timeout?: number }): Promise<void> {
  const t = await target(ctx, context);
  try {
    await t.clients.custom.deleteNamespacedCustomObject({ ...MVM, namespace: t.namespace, name });
  } catch (e) {
    if (statusOf(e) === 404)
      throw new BangerError("VM_NOT_FOUND", `no MicroVM named ${name} in ${t.namespace}`, { hint: `see \`banger --context ${context} vm ls\`` });
    throw clusterError(`deleting MicroVM ${t.namespace}/${name}`, e);
  }
  if (o.wait !== false) {
    // The object stays until its node removed the VM (the finalizer): that is when it is really gone.
    const end = Date.now() + (o.timeout ?? 300) * 1000;
    while (await get(t, name)) {
      if (Date.now() > end)
        throw new BangerError("TIMEOUT", `MicroVM ${name} is still being removed after ${o.timeout ?? 300} s`, {
          hint: "its node has not released it yet; it goes once the node agent removes the VM",
        });
      await sleep(POLL_MS);
    }
  }
  ctx.out(o.wait === false ? `deleting ${name}` : `removed ${name}`, { removed: name, namespace: t.namespace });
}
