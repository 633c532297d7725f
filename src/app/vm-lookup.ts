import { BangerError } from "../domain/errors.js";
import type { Vm } from "../domain/types.js";
import type { Store } from "../ports/store.js";

export function vmNotFound(name: string): BangerError {
  return new BangerError("VM_NOT_FOUND", `no VM named ${name}`, { hint: "`banger vm ls` lists VMs" });
}

/** Reads are pure: they report what the store says. The liveness reconciler keeps it true. */
export function getVm(d: { store: Store }, name: string): Vm {
  const vm = d.store.getVm(name);
  if (!vm) throw vmNotFound(name);
  return vm;
}

/**
 * A build's builder VM is the build's own business while it runs, and a paused pool member is the pool's until a
 * create claims it; one left `failed` is listed so `vm rm` can find it.
 */
export function listVms(d: { store: Store }): Vm[] {
  return d.store.listVms().filter((v) => v.role === undefined || v.state === "failed");
}
