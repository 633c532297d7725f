import { BangerError, asBangerError } from "../domain/errors.js";
import type { Vm } from "../domain/types.js";
import { assertTransition, type VmState } from "../domain/vm-state.js";
import type { VmPatch } from "../ports/store.js";
import type { AppDeps } from "./deps.js";
import { hasPeers, syncPeers } from "./vm-net.js";

/**
 * Move a VM along one edge of the state machine as a compare-and-swap on the
 * state it was read in. The per-VM lock makes a lost swap unexpected; if it
 * happens anyway (a second daemon on the same database), nobody proceeds on a
 * stale view.
 */
export function transition(d: Pick<AppDeps, "store">, vm: Vm, to: VmState, patch: VmPatch = {}): Vm {
  assertTransition(vm.name, vm.state, to);
  const next = d.store.transitionVm(vm.id, [vm.state], to, patch);
  if (next) return next;
  const now = d.store.getVm(vm.name);
  throw new BangerError("VM_BUSY", `VM ${vm.name} changed state under this operation (expected ${vm.state}, found ${now?.state ?? "no VM"})`, {
    hint: "another process is managing the same state directory; run one bangerd per state_dir",
  });
}

/**
 * An operation failed after its plan unwound: record why on the VM and put it
 * in `to` (stopped when the undo was clean, failed when it was not). Returns
 * the error to rethrow.
 */
export function settleFailed(d: Pick<AppDeps, "store" | "log">, vm: Vm, raw: unknown, to: VmState, patch: VmPatch = {}): BangerError {
  const err = asBangerError(raw);
  const now = d.store.getVm(vm.name);
  if (now && now.id === vm.id) {
    try {
      transition(d, now, to, { ...patch, lastError: err.message.split("\n")[0] });
    } catch (e) {
      d.log.error({ vm: vm.name, stage: "settle", err: (e as Error).message }, "could not record the failure on the VM");
    }
  }
  return err;
}

/**
 * Give back what a running VM holds on the host (TAP, NAT, its peerings on the bridge); the lease, disks and
 * port forwards stay for the next start. Peers are unpaired before the TAP can go back to the pool.
 */
export async function releaseHostSide(d: Pick<AppDeps, "network" | "store">, vm: Vm): Promise<void> {
  if (vm.nat && vm.ip) await d.network.disableNat(vm.ip);
  if (vm.tap && hasPeers(d, vm.id)) await syncPeers(d, vm.id);
  if (vm.tap) await d.network.releaseTap(vm.tap, vm.id);
}
