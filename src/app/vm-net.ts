import { BangerError } from "../domain/errors.js";
import { DEFAULT_PUBLISH_ADDRESS, formatForward, parseForward, type ForwardSpec, type PortForward } from "../domain/forwards.js";
import type { Vm } from "../domain/types.js";
import type { AppDeps } from "./deps.js";
import type { Stage } from "./plan.js";
import { getVm, vmNotFound } from "./vm-lookup.js";

/**
 * What a VM is allowed on the network beyond the default (isolated, no
 * inbound): peers it may exchange frames with, and host ports relayed to it.
 * The store is the truth for both; the host side is derived from it.
 */

export type NetDeps = Pick<AppDeps, "store" | "network" | "forwarder" | "log">;

/**
 * Push the peer pairs of every VM holding a TAP to the host. `without` is a
 * VM about to give its TAP back: it is dropped first, so its device never
 * returns to the pool still paired. The pairs are computed and handed over
 * without an await, so concurrent syncs apply in the order the store saw.
 */
export function syncPeers(d: Pick<AppDeps, "store" | "network">, without?: string): Promise<void> {
  const taps = new Map<string, string>();
  for (const vm of d.store.listVms()) if (vm.tap && vm.id !== without) taps.set(vm.id, vm.tap);
  const pairs: Array<[string, string]> = [];
  for (const [a, b] of d.store.peerPairs()) {
    const ta = taps.get(a);
    const tb = taps.get(b);
    if (ta && tb) pairs.push([ta, tb]);
  }
  return d.network.setPeers(pairs);
}

export function hasPeers(d: Pick<AppDeps, "store">, vmId: string): boolean {
  return d.store.peerPairs().some(([a, b]) => a === vmId || b === vmId);
}

/** Names to VM ids, refused before anything is acquired when one does not exist. */
export function resolvePeers(d: Pick<AppDeps, "store">, names: readonly string[], self?: string): string[] {
  const ids: string[] = [];
  for (const n of names) {
    if (n === self) throw new BangerError("BAD_REQUEST", `VM ${n} cannot be its own peer`, { hint: "name other VMs in --peers" });
    const vm = d.store.getVm(n);
    if (!vm)
      throw new BangerError("VM_NOT_FOUND", `peer VM ${n} does not exist`, { hint: "create it first, or drop it from --peers (`banger vm ls` lists VMs)" });
    if (!ids.includes(vm.id)) ids.push(vm.id);
  }
  return ids;
}

/** Create: record the peerings before the TAP stage, which applies them (they go with the VM row). */
export function peersStage(d: NetDeps, vm: () => Vm, peerIds: readonly string[]): Stage {
  return {
    name: "peers",
    run: async ({ onUndo }) => {
      d.store.addPeers(vm().id, peerIds);
      onUndo("peers", () => d.store.removePeers(vm().id));
      return `${peerIds.length} peer(s)`;
    },
  };
}

/**
 * Pairs an existing VM with each of `peers` it is not paired with yet, and applies the pairs
 * (the node agent, when a peer MicroVM arrives after this one was made). Returns the names newly
 * paired; none is a no-op. Serialised with the VM's other operations, so it never races its removal.
 */
export async function addPeerings(d: NetDeps & Pick<AppDeps, "ops">, name: string, peers: readonly string[]): Promise<string[]> {
  const ticket = d.ops.begin(name, "peer");
  try {
    const vm = getVm(d, name);
    if (vm.state === "deleting") throw new BangerError("VM_STATE", `VM ${name} is being deleted`, { hint: "peer VMs that exist" });
    const ids = resolvePeers(d, peers, name);
    const have = new Set(d.store.peerPairs().flatMap(([a, b]) => (a === vm.id ? [b] : b === vm.id ? [a] : [])));
    const missing = ids.filter((id) => !have.has(id));
    if (missing.length === 0) return [];
    d.store.addPeers(vm.id, missing);
    await syncPeers(d);
    return peers.filter((n) => missing.includes(d.store.getVm(n)?.id ?? ""));
  } finally {
    ticket.release();
  }
}

/** Create: record and open each forward; a taken port fails the create and undoes the ones before it. */
export function forwardsStage(d: NetDeps, vm: () => Vm, specs: readonly ForwardSpec[]): Stage {
  return {
    name: "forwards",
    run: async ({ onUndo }) => {
      for (const s of specs) {
        const f: PortForward = { vmId: vm().id, ...s };
        d.store.addForward(f);
        onUndo(`forward ${s.hostPort}`, () => void d.store.removeForward(f.vmId, f.hostAddress, f.hostPort));
        await d.forwarder.open(f, vm().ip!);
        onUndo(`listener ${s.hostPort}`, () => d.forwarder.close(f.hostAddress, f.hostPort));
      }
      return specs.map(formatForward).join(", ");
    },
  };
}

/** Close every listener of a VM whose row is going away (its rows go with it). */
export async function closeForwards(d: Pick<AppDeps, "store" | "forwarder">, vmId: string): Promise<void> {
  for (const f of d.store.listForwards(vmId)) await d.forwarder.close(f.hostAddress, f.hostPort);
}

/**
 * Daemon start: listen again for every stored forward. A port another
 * program took meanwhile is logged and reported, not fatal: the other VMs'
 * forwards still come up, and `doctor` names the missing one.
 */
export async function restoreForwards(d: NetDeps): Promise<string[]> {
  const failed: string[] = [];
  const vms = new Map(d.store.listVms().map((v) => [v.id, v]));
  for (const f of d.store.listForwards()) {
    const vm = vms.get(f.vmId);
    if (!vm?.ip) continue;
    try {
      await d.forwarder.open(f, vm.ip);
    } catch (e) {
      failed.push(formatForward(f));
      d.log.warn({ vm: vm.name, stage: "forwards", forward: formatForward(f), err: (e as Error).message }, "cannot restore port forward");
    }
  }
  return failed;
}

export interface ForwardView extends ForwardSpec {
  vm: string;
  /** Whether bangerd listens on it right now. */
  listening: boolean;
}

export function listPorts(d: NetDeps, name: string): ForwardView[] {
  const vm = getVm(d, name);
  const live = new Set(d.forwarder.active().map((f) => `${f.hostAddress}:${f.hostPort}`));
  return d.store.listForwards(vm.id).map((f) => ({
    vm: vm.name,
    hostAddress: f.hostAddress,
    hostPort: f.hostPort,
    guestPort: f.guestPort,
    listening: live.has(`${f.hostAddress}:${f.hostPort}`),
  }));
}

/** `vm port add`: serialised with the VM's other operations so it never races its removal. */
export async function addPort(d: NetDeps & Pick<AppDeps, "ops">, name: string, spec: string | ForwardSpec): Promise<ForwardView> {
  const s = typeof spec === "string" ? parseForward(spec) : spec;
  const ticket = d.ops.begin(name, "port");
  try {
    const vm = getVm(d, name);
    if (vm.state === "deleting" || !vm.ip) throw new BangerError("VM_STATE", `VM ${name} is ${vm.state}`, { hint: "forward ports of a VM that exists" });
    const f: PortForward = { vmId: vm.id, ...s };
    d.store.addForward(f);
    try {
      await d.forwarder.open(f, vm.ip);
    } catch (e) {
      d.store.removeForward(f.vmId, f.hostAddress, f.hostPort);
      throw e;
    }
    return { vm: vm.name, ...s, listening: true };
  } finally {
    ticket.release();
  }
}

export async function removePort(d: NetDeps & Pick<AppDeps, "ops">, name: string, hostPort: number, hostAddress = DEFAULT_PUBLISH_ADDRESS): Promise<void> {
  const ticket = d.ops.begin(name, "port");
  try {
    const vm = d.store.getVm(name);
    if (!vm) throw vmNotFound(name);
    if (!d.store.removeForward(vm.id, hostAddress, hostPort)) {
      throw new BangerError("NOT_FOUND", `VM ${name} has no forward on ${hostAddress}:${hostPort}`, {
        hint: `\`banger vm port ls ${name}\` lists its forwards`,
      });
    }
    await d.forwarder.close(hostAddress, hostPort);
  } finally {
    ticket.release();
  }
}
