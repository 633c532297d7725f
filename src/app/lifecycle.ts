import { BangerError } from "../domain/errors.js";
import type { LifecycleEvent, Vm } from "../domain/types.js";
import { OP_ENTRY, wrongState } from "../domain/vm-state.js";
import { resolveImage, type CreateDeps } from "./create.js";
import { Plan } from "./plan.js";
import { bootStages, explainGuestFailure, tapStage, type BootContext } from "./boot-stages.js";
import { handleOf } from "./vm-boot.js";
import { removeSockets } from "./vm-files.js";
import { removeSecret } from "./vm-secret.js";
import { getVm, vmNotFound } from "./vm-lookup.js";
import { closeForwards } from "./vm-net.js";
import { sshTarget } from "./vm-ready.js";
import { releaseHostSide, settleFailed, transition } from "./vm-transitions.js";

/** Start, stop and rm use the same parts as a create (nothing more), minus the names and the pools. */
export type LifecycleDeps = Omit<CreateDeps, "names" | "diskPool" | "vmPool" | "disks">;

const STOP_TIMEOUT_MS = 30_000;
/** The in-guest command over SSH: enough to connect and hand the command over, not to wait for the shutdown. */
const GUEST_STOP_SSH_MS = 5_000;
const STOP_ACK = "banger-stop-accepted";
/** After the guest accepted the command, how long its own shutdown may take before the VMM is asked. */
const GUEST_STOP_GRACE_MS = 15_000;

export interface OpOptions {
  /** The caller's request: aborting it cancels a create or start. */
  signal?: AbortSignal;
}

export async function stopVm(d: LifecycleDeps, name: string): Promise<Vm> {
  const ticket = d.ops.begin(name, "stop");
  try {
    let vm = getVm(d, name);
    if (!OP_ENTRY.stop.from.includes(vm.state)) throw wrongState(name, "stop", vm.state);
    vm = transition(d, vm, "stopping");
    const vmm = d.vmm(vm.vmm);
    const h = handleOf(vm, vmm);
    let guestAsked = false;
    const plan = new Plan(d.store, d.log, vm, "stop", undefined, d.config.eventsKeepOps);
    try {
      await plan.run([
        // The guest's own shutdown first: it works whatever the image maps Ctrl-Alt-Del or the
        // power button to. The command is the one that ends this VMM (a reboot for Firecracker).
        {
          name: "guest-stop",
          run: async () => {
            // ssh exits 255 both when it cannot connect and when sshd goes away under the command (the
            // point of the command), so the guest acknowledges first: the marker says the command ran.
            const r = await d.guest
              .exec(await sshTarget(d, vm), `echo ${STOP_ACK} && ${vmm.guestStopCommand}`, GUEST_STOP_SSH_MS)
              .catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message }));
            guestAsked = r.stdout.includes(STOP_ACK);
            return guestAsked
              ? `${vmm.guestStopCommand} over SSH`
              : `not reachable over SSH (${r.stderr.trim().split("\n")[0] || `exit ${r.code}`}); VMM request only`;
          },
        },
        {
          name: "vmm-stop",
          run: async () => {
            if (!h) return "no VMM process recorded";
            const r = await vmm.stop(h, { timeoutMs: STOP_TIMEOUT_MS, graceMs: guestAsked ? GUEST_STOP_GRACE_MS : 0 });
            return `ended by ${r.how} after ${r.ms} ms`;
          },
        },
        {
          name: "release-net",
          run: async () => {
            await releaseHostSide(d, vm);
          },
        },
      ]);
    } catch (e) {
      throw settleFailed(d, vm, e, "failed");
    }
    await removeSockets(d.files, vm.dir);
    return transition(d, vm, "stopped", { pid: undefined, pidStart: undefined, tap: undefined, lastError: undefined });
  } finally {
    ticket.release();
  }
}

export async function startVm(d: LifecycleDeps, name: string, opts: { noWait?: boolean } & OpOptions = {}): Promise<Vm> {
  const ticket = d.ops.begin(name, "start", { signal: opts.signal, deadlineMs: d.config.opTimeoutMs });
  try {
    let vm = getVm(d, name);
    if (!OP_ENTRY.start.from.includes(vm.state)) throw wrongState(name, "start", vm.state);
    const image = resolveImage(d, d.store.getImageById(vm.imageId)!.name); // the FK keeps a VM's image in place
    const vmm = d.vmm(vm.vmm);
    vm = transition(d, vm, "starting", { lastError: undefined });
    const patch = (p: Partial<Vm>) => {
      vm = d.store.updateVm(vm.id, p);
    };
    const boot: BootContext = { d, image, vmm, vm: () => vm, patch, noWait: opts.noWait };
    const plan = new Plan(d.store, d.log, vm, "start", ticket.signal, d.config.eventsKeepOps);
    plan.path = "cold";
    try {
      await plan.run([tapStage(boot), ...bootStages(boot)], explainGuestFailure(d, vm.dir));
    } catch (e) {
      // Undone cleanly, the VM is just stopped again (with the reason kept); otherwise its host side is unknown.
      throw settleFailed(d, vm, e, plan.undoFailures === 0 ? "stopped" : "failed", { pid: undefined, pidStart: undefined, tap: undefined });
    }
    plan.commit();
    return transition(d, vm, "running");
  } finally {
    ticket.release();
  }
}

/** Tear down everything a VM owns; the VM must be in `deleting`. Every step tolerates the resource being gone already. */
export async function destroyVm(d: LifecycleDeps, vm: Vm, reason: string): Promise<void> {
  try {
    const vmm = d.vmm(vm.vmm);
    const h = handleOf(vm, vmm);
    if (h) await vmm.kill(h);
    await closeForwards(d, vm.id);
    await releaseHostSide(d, vm);
    d.store.releaseLease(vm.id);
    await d.files.remove(vm.dir);
    await removeSecret(d, vm);
    d.store.deleteVm(vm.id);
  } catch (e) {
    throw settleFailed(d, vm, e, "failed");
  }
  d.log.info({ vm: vm.name, stage: "destroy", reason }, "VM removed");
}

export interface RemoveResult {
  removed: string;
  /** The create or start that `rm --force` cancelled first. */
  cancelled?: string;
}

export async function removeVm(d: LifecycleDeps, name: string, force: boolean): Promise<RemoveResult> {
  let cancelled: string | undefined;
  if (force) {
    cancelled = await d.ops.preempt(name, new BangerError("CANCELLED", `cancelled by \`banger vm rm --force ${name}\``));
  }
  const ticket = d.ops.begin(name, "delete");
  try {
    const vm = d.store.getVm(name);
    // A cancelled create undoes itself down to the VM row: nothing is left to remove.
    if (!vm && cancelled === "create") return { removed: name, cancelled };
    if (!vm) throw vmNotFound(name);
    if (vm.state === "running" && !force) {
      throw new BangerError("VM_STATE", `VM ${name} is running`, { hint: `stop it first (\`banger vm stop ${name}\`) or pass --force` });
    }
    if (!OP_ENTRY.delete.from.includes(vm.state)) throw wrongState(name, "delete", vm.state);
    await destroyVm(d, transition(d, vm, "deleting"), force ? "rm --force" : "rm");
    return cancelled ? { removed: name, cancelled } : { removed: name };
  } finally {
    ticket.release();
  }
}

export function vmEvents(d: LifecycleDeps, name: string): LifecycleEvent[] {
  return d.store.events(getVm(d, name).id);
}
