import { readdirSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { BangerError } from "../domain/errors.js";
import type { LifecycleEvent, Vm } from "../domain/types.js";
import type { AppDeps } from "./deps.js";
import { resolveImage } from "./create.js";
import { Plan, type Stage } from "./plan.js";
import { bootStages, explainGuestFailure, tapStage, type BootContext } from "./boot-stages.js";
import { handleOf, sshTarget, vmNotFound } from "./vm-support.js";

const STOP_TIMEOUT_MS = 30_000;

export function getVm(d: AppDeps, name: string): Vm {
  const vm = d.store.getVm(name);
  if (!vm) throw vmNotFound(name);
  return refreshLiveness(d, vm);
}

export function listVms(d: AppDeps): Vm[] {
  return d.store.listVms().map((vm) => refreshLiveness(d, vm));
}

/** A running VM whose process vanished (guest powered off, VMM crashed) is reported as stopped. */
function refreshLiveness(d: AppDeps, vm: Vm): Vm {
  const h = handleOf(vm);
  if (vm.state === "running" && (!h || !d.vmm(vm.vmm).isAlive(h))) {
    d.log.warn({ vm: vm.name, stage: "liveness", pid: vm.pid }, "VMM process is gone; marking VM stopped");
    void releaseHostSide(d, vm);
    return markStopped(d, vm);
  }
  return vm;
}

/** Record a VM whose VMM is gone as stopped; its lease and disks stay. The caller releases TAP and NAT. */
export function markStopped(d: AppDeps, vm: Vm): Vm {
  removeSockets(vm.dir);
  return d.store.updateVm(vm.id, { state: "stopped", pid: undefined, pidStart: undefined, tap: undefined });
}

/** A dead VMM leaves its API/QMP/vsock sockets behind; they would only confuse the next spawn and the leak verifier. */
function removeSockets(dir: string): void {
  try {
    for (const f of readdirSync(dir)) if (f.endsWith(".sock")) rmSync(join(dir, f), { force: true });
  } catch {
    // no dir: nothing to clean
  }
}

/** Give back what a running VM holds on the host (TAP, NAT); the lease and disks stay for the next start. */
async function releaseHostSide(d: AppDeps, vm: Vm): Promise<void> {
  if (vm.nat && vm.ip) await d.network.disableNat(vm.ip).catch((e) => d.log.warn({ vm: vm.name, err: e.message }, "nat release failed"));
  if (vm.tap) await d.network.releaseTap(vm.tap).catch((e) => d.log.warn({ vm: vm.name, err: e.message }, "tap release failed"));
}

export async function stopVm(d: AppDeps, name: string): Promise<Vm> {
  const vm = getVm(d, name);
  if (vm.state !== "running") {
    throw new BangerError("VM_STATE", `VM ${name} is ${vm.state}, not running`, { hint: `\`banger vm start ${name}\` starts it` });
  }
  const plan = new Plan(d.store, d.log, vm, "stop");
  const h = handleOf(vm)!;
  await plan.run([
    // The guest's own clean shutdown first: it works whatever the VMM, while ACPI power-button
    // handling depends on the guest (the Debian image has no logind). The VMM's stop is the fallback.
    { name: "guest-poweroff", run: async () => {
      const r = await d.guest.exec(await sshTarget(d, vm), "systemctl poweroff", 10_000).catch((e: Error) => ({ code: -1, stderr: e.message }));
      return r.code === 0 || r.code === 255 ? "systemctl poweroff" : `not reachable over SSH (${r.stderr.trim().split("\n")[0] || `exit ${r.code}`}); VMM stop only`;
    } },
    { name: "vmm-stop", run: async () => { await d.vmm(vm.vmm).stop(h, { timeoutMs: STOP_TIMEOUT_MS }); } },
    { name: "release-net", run: async () => { await releaseHostSide(d, vm); } },
  ]);
  removeSockets(vm.dir);
  return d.store.updateVm(vm.id, { state: "stopped", pid: undefined, pidStart: undefined, tap: undefined });
}

export async function startVm(d: AppDeps, name: string, opts: { noWait?: boolean } = {}): Promise<Vm> {
  let vm = getVm(d, name);
  if (vm.state !== "stopped") {
    throw new BangerError("VM_STATE", `VM ${name} is ${vm.state}, not stopped`, { hint: vm.state === "running" ? "it is already running" : `remove it with \`banger vm rm ${name}\`` });
  }
  const image = resolveImage(d, d.store.getImageById(vm.imageId)!.name); // the FK keeps a VM's image in place
  const vmm = d.vmm(vm.vmm);
  const patch = (p: Partial<Vm>) => { vm = d.store.updateVm(vm.id, p); };
  const boot: BootContext = { d, image, vmm, vm: () => vm, patch, noWait: opts.noWait };
  const stages: Stage[] = [tapStage(boot), ...bootStages(boot)];
  const plan = new Plan(d.store, d.log, vm, "start");
  await plan.run(stages, explainGuestFailure(vm.dir));
  plan.commit();
  return d.store.updateVm(vm.id, { state: "running" });
}

/** Tear down everything a VM owns. Every step tolerates the resource being gone already. */
export async function destroyVm(d: AppDeps, vm: Vm, reason: string): Promise<void> {
  const h = handleOf(vm);
  if (h) await d.vmm(vm.vmm).kill(h);
  await releaseHostSide(d, vm);
  d.store.releaseLease(vm.id);
  await rm(vm.dir, { recursive: true, force: true });
  d.store.deleteVm(vm.id);
  d.log.info({ vm: vm.name, stage: "destroy", reason }, "VM removed");
}

export async function removeVm(d: AppDeps, name: string, force: boolean): Promise<void> {
  const vm = getVm(d, name);
  if (vm.state === "running" && !force) {
    throw new BangerError("VM_STATE", `VM ${name} is running`, { hint: `stop it first (\`banger vm stop ${name}\`) or pass --force` });
  }
  if (vm.state === "creating") {
    throw new BangerError("VM_STATE", `VM ${name} is still being created`, { hint: "wait for the create to finish or fail" });
  }
  d.store.updateVm(vm.id, { state: "deleting" });
  await destroyVm(d, vm, force ? "rm --force" : "rm");
}

export function vmEvents(d: AppDeps, name: string): LifecycleEvent[] {
  return d.store.events(getVm(d, name).id);
}


