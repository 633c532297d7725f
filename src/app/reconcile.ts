import { join } from "node:path";
import { destroyVm, type LifecycleDeps } from "./lifecycle.js";
import { handleOf } from "./vm-boot.js";
import { releaseExitedVmm, removeSockets } from "./vm-files.js";
import { transition } from "./vm-transitions.js";
import { restoreForwards, syncPeers } from "./vm-net.js";

export interface ReconcileReport {
  adopted: string[];
  markedStopped: string[];
  purgedCreates: string[];
  /** Paused pool members left by the previous daemon (app/vm-pool.ts): always discarded. */
  discardedPool: string[];
  removedDirs: string[];
  /** Stored forwards that could not listen again (their port is taken); `doctor` reports them too. */
  forwardsFailed?: string[];
}

/**
 * Daemon start-up: make the store and the host agree. Running VMMs are
 * adopted, dead ones marked stopped, half-done creates (the daemon died
 * mid-create) removed entirely, and anything banger made that no VM owns is
 * cleaned. Each action is logged.
 */
export async function reconcile(d: LifecycleDeps): Promise<ReconcileReport> {
  const report: ReconcileReport = { adopted: [], markedStopped: [], purgedCreates: [], discardedPool: [], removedDirs: [] };
  const log = d.log.child({ stage: "reconcile" });

  for (const vm of d.store.listVms()) {
    const vmm = d.vmm(vm.vmm);
    const h = handleOf(vm, vmm);
    const alive = h ? vmm.isAlive(h) : false;
    if (vm.role === "pool") {
      // A paused pool member is discarded, never adopted: whether its restore had completed cannot be
      // known from here, and a new one costs a restore. destroyVm kills its VMM by pid and start time.
      await destroyVm(d, vm.state === "deleting" || vm.state === "failed" ? vm : transition(d, vm, "deleting"), "paused pool member at daemon start");
      report.discardedPool.push(vm.name);
      log.info({ vm: vm.name, pid: vm.pid, alive }, "discarded paused pool member");
    } else if (vm.state === "creating" || vm.state === "deleting") {
      // A create or delete that the daemon did not finish: a half-built VM is worth nothing, so remove all of it.
      await destroyVm(d, vm.state === "creating" ? transition(d, vm, "deleting") : vm, `unfinished ${vm.state} at daemon start`);
      report.purgedCreates.push(vm.name);
    } else if (vm.state === "starting" || vm.state === "stopping") {
      // Interrupted half way: finish it towards stopped, the state that needs nothing on the host.
      // kill() on a process that is gone still removes what the driver left (a Firecracker jail).
      if (h) await vmm.kill(h);
      if (vm.nat && vm.ip) await d.network.disableNat(vm.ip);
      await removeSockets(d.files, vm.dir);
      transition(d, vm, "stopped", {
        pid: undefined,
        pidStart: undefined,
        tap: undefined,
        lastError: `${vm.state === "starting" ? "start" : "stop"} interrupted by a daemon restart`,
      });
      report.markedStopped.push(vm.name);
      log.warn({ vm: vm.name, was: vm.state }, "operation interrupted by the daemon's exit; VM is stopped");
    } else if (vm.state === "running" && alive) {
      report.adopted.push(vm.name);
      if (vm.nat && vm.ip) await d.network.enableNat(vm.ip);
      log.info({ vm: vm.name, pid: vm.pid }, "adopted running VMM");
    } else if (vm.state === "running") {
      // Its TAP is left to adopt() below, which sorts every device at once.
      if (vm.nat && vm.ip) await d.network.disableNat(vm.ip);
      await releaseExitedVmm(d.files, vmm, h, vm.dir);
      transition(d, vm, "stopped", { pid: undefined, pidStart: undefined, tap: undefined, lastError: "the VMM process ended while bangerd was not running" });
      report.markedStopped.push(vm.name);
      log.warn({ vm: vm.name, pid: vm.pid }, "VMM died while the daemon was away; marked stopped");
    }
  }

  const live = d.store.listVms();
  // A failed VM keeps its TAP until `rm`: its VMM's fate is unknown, so the device is not handed out again.
  const busyTaps = live.filter((v) => (v.state === "running" || v.state === "failed") && v.tap).map((v) => ({ tap: v.tap!, vmId: v.id }));
  await d.network.adopt(busyTaps);
  // The bridge set may name devices of VMs that are gone or hold other TAPs now; rebuild it from the store.
  await syncPeers(d);
  report.forwardsFailed = await restoreForwards(d);

  const owned = new Set(live.map((v) => v.id));
  for (const entry of await d.files.list(d.config.vmsDir)) {
    if (owned.has(entry)) continue;
    await d.files.remove(join(d.config.vmsDir, entry));
    report.removedDirs.push(entry);
    log.warn({ dir: entry }, "removed VM directory with no VM");
  }
  return report;
}
