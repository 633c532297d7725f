import type { Vm } from "../domain/types.js";
import type { AppConfig, AppDeps } from "./deps.js";
import { Plan } from "./plan.js";
import { rotateConsoles } from "./retention.js";
import { handleOf } from "./vm-boot.js";
import { releaseExitedVmm } from "./vm-files.js";
import { releaseHostSide, settleFailed, transition } from "./vm-transitions.js";

type LivenessDeps = Pick<AppDeps, "store" | "ops" | "vmm" | "network" | "files" | "console" | "log"> & {
  config: Pick<AppConfig, "eventsKeepOps" | "consoleLogMaxBytes">;
};

/** Console rotation rides on the same loop, less often: a guest fills 8 MiB in minutes at the very least. */
const ROTATE_EVERY_PASSES = 10;

const EXITED = "the VMM process ended outside banger (an in-guest poweroff or reboot, or a crash)";

/**
 * The daemon's background reconciler, and the one owner of liveness. GETs only read the store; this loop notices a
 * VMM that ended on its own (by its pid and start time) and turns it into
 * `running -> stopped` with the host side released. It takes the VM's
 * operation lock first, so the change happens exactly once and never inside
 * a stop, start or rm, which own the VM while they run.
 */
export class LivenessWatcher {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<string[]> | undefined;
  private passes = 0;

  constructor(
    private readonly d: LivenessDeps,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      void this.tick();
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One pass; overlapping calls share it. Returns the VMs recorded as stopped. */
  tick(): Promise<string[]> {
    this.ticking ??= this.pass().finally(() => {
      this.ticking = undefined;
    });
    return this.ticking;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  private dead(vm: Vm): boolean {
    if (vm.state !== "running") return false;
    const vmm = this.d.vmm(vm.vmm);
    const h = handleOf(vm, vmm);
    return !h || !vmm.isAlive(h);
  }

  private async pass(): Promise<string[]> {
    if (++this.passes % ROTATE_EVERY_PASSES === 0) await rotateConsoles(this.d);
    const stopped: string[] = [];
    for (const seen of this.d.store.listVms()) {
      if (!this.dead(seen)) continue;
      // Busy: the operation in progress owns the VM (a stop is waiting for exactly this exit).
      const ticket = this.d.ops.tryBegin(seen.name, "exit");
      if (!ticket) continue;
      try {
        const vm = this.d.store.getVm(seen.name);
        if (vm && vm.id === seen.id && this.dead(vm) && (await this.recordExit(vm))) stopped.push(vm.name);
      } catch (e) {
        this.d.log.error({ vm: seen.name, stage: "liveness", err: (e as Error).message }, "could not record a VMM exit");
      } finally {
        ticket.release();
      }
    }
    return stopped;
  }

  private async recordExit(vm: Vm): Promise<boolean> {
    this.d.log.warn({ vm: vm.name, stage: "liveness", pid: vm.pid }, "VMM process is gone; marking VM stopped");
    const plan = new Plan(this.d.store, this.d.log, vm, "exit", undefined, this.d.config.eventsKeepOps);
    try {
      await plan.run([
        {
          name: "release-net",
          run: async () => {
            await releaseHostSide(this.d, vm);
            return EXITED;
          },
        },
      ]);
    } catch (e) {
      settleFailed(this.d, vm, e, "failed", { pid: undefined, pidStart: undefined });
      return false;
    }
    await releaseExitedVmm(this.d.files, this.d.vmm(vm.vmm), handleOf(vm, this.d.vmm(vm.vmm)), vm.dir);
    transition(this.d, vm, "stopped", { pid: undefined, pidStart: undefined, tap: undefined, lastError: EXITED });
    return true;
  }
}
