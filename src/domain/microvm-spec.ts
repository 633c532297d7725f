import type { MicroVm, MicroVmStatus } from "./microvm.js";

/**
 * What `spec.peers` and `spec.ttlSeconds` mean for placement and lifetime (docs/scale-out.md
 * "Peers" and "Time to live"). Pure: the controller and the node agent decide from these.
 */

/**
 * The MicroVMs `vm` must share a node with: those it names in `spec.peers`, and those in its
 * namespace that name it (a peering is symmetric on the bridge, so either side declaring it is
 * enough). Sorted, without itself; deleting MicroVMs no longer hold anyone.
 */
export function peerGroup(
  vm: Pick<MicroVm, "namespace" | "name" | "spec">,
  all: Iterable<Pick<MicroVm, "namespace" | "name" | "spec" | "deleting">>,
): string[] {
  const out = new Set(vm.spec.peers ?? []);
  for (const o of all) {
    if (o.namespace === vm.namespace && !o.deleting && o.name !== vm.name && (o.spec.peers ?? []).includes(vm.name)) out.add(o.name);
  }
  out.delete(vm.name);
  return [...out].sort();
}

/** Whether two MicroVMs of one namespace are peers by either one's spec. */
export function arePeers(a: Pick<MicroVm, "name" | "spec">, b: Pick<MicroVm, "name" | "spec">): boolean {
  return a.name !== b.name && ((a.spec.peers ?? []).includes(b.name) || (b.spec.peers ?? []).includes(a.name));
}

/** Kubernetes keeps times at second precision; so does this, so a re-read compares equal. */
export const isoSeconds = (ms: number): string => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

/**
 * When the MicroVM first reached Running, for a status that is Running and does not say yet: the
 * Ready condition's transition (the node agent's moment), but never later than `now` (a node's
 * clock ahead of the controller's must not lengthen the lifetime). Undefined when there is
 * nothing to record.
 */
export function runningSinceFor(status: MicroVmStatus, now: number): string | undefined {
  if (status.runningSince || status.phase !== "Running") return undefined;
  const ready = status.conditions?.find((c) => c.type === "Ready" && c.status === "True");
  const at = ready ? Date.parse(ready.lastTransitionTime) : NaN;
  return isoSeconds(Number.isNaN(at) ? now : Math.min(at, now));
}

/** The moment (ms) a MicroVM with a time to live is to be deleted; undefined while it has none or never ran. */
export function expiresAt(vm: Pick<MicroVm, "spec" | "status">): number | undefined {
  const ttl = vm.spec.ttlSeconds;
  const since = vm.status.runningSince ? Date.parse(vm.status.runningSince) : NaN;
  if (ttl === undefined || ttl === null || Number.isNaN(since)) return undefined;
  return since + ttl * 1000;
}
