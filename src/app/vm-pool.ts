import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { BangerError, asBangerError } from "../domain/errors.js";
import { artifactOf, type Image, type Vm } from "../domain/types.js";
import type { AppConfig, ClaimedMember, PausedPool, PausedPoolStats } from "./deps.js";
import { explainGuestFailure, tapStage, type BootContext } from "./boot-stages.js";
import { leaseStage } from "./lease-stage.js";
import { destroyVm, type LifecycleDeps } from "./lifecycle.js";
import { Plan } from "./plan.js";
import { acquireStages, type RestoreDeps } from "./restore-stages.js";
import { chooseBootSource, snapshotDisks, type SourceDeps } from "./snapshot-source.js";
import { handleOf } from "./vm-boot.js";
import { settleFailed, transition } from "./vm-transitions.js";

export type VmPoolDeps = LifecycleDeps &
  RestoreDeps &
  SourceDeps & { config: Pick<AppConfig, "vmPoolSize" | "vmPoolMaxMemoryMib" | "vcpus" | "memoryMib" | "workDiskGib" | "vmm" | "vmsDir" | "eventsKeepOps"> };

interface Member {
  vm: Vm;
  snapshotId: string;
  readyAt: number;
  fillMs: number;
}

/** Restored, not resumed: MemAvailable must stay above this many times a member's memory once it is added. */
const HEADROOM_FACTOR = 2;

/**
 * Paused clones of each image's golden snapshot, so a create only re-identifies and resumes one.
 * A member is an ordinary VM row (role "pool", state "creating") holding a lease, a TAP, private
 * disk copies and a QEMU that completed its incoming migration with the guest still stopped: the
 * first half of a create from a snapshot (restore-stages.ts `acquireStages`), run ahead of time.
 * Leases, TAPs, the per-VM lock, reconcile and the leak checks therefore treat it as any VM. A
 * member whose snapshot was replaced or removed is discarded, never resumed. Refills run one member
 * at a time across images, only while no create (or golden boot) holds a lock, because restoring
 * on a 2-core TCG host would slow the boot a user waits for; they stop at the memory cap.
 */
export class VmPool implements PausedPool {
  private readonly ready = new Map<string, Member[]>();
  private job: Promise<void> | undefined;
  private filling: string | undefined;
  private readonly abort = new AbortController();
  /** Cancels the member being restored now. */
  private current: AbortController | undefined;
  private closed = false;
  private capped: string | undefined;

  constructor(private readonly d: VmPoolDeps) {}

  private misses = 0;

  private get size(): number {
    return this.d.config.vmPoolSize;
  }

  take(imageId: string, want: { snapshotId: string; vcpus: number; memoryMib: number; workDiskGib: number }): ClaimedMember | undefined {
    const list = this.ready.get(imageId) ?? [];
    for (let i = 0; i < list.length;) {
      const m = list[i];
      const vmm = this.d.vmm(m.vm.vmm);
      const h = handleOf(m.vm, vmm);
      // A member of an older snapshot must never run: its guest would carry that snapshot's state.
      const stale = m.snapshotId !== want.snapshotId ? "its snapshot was replaced" : !h || !vmm.isAlive(h) ? "its VMM is gone" : undefined;
      if (stale) {
        list.splice(i, 1);
        void this.discard(m.vm, stale);
        continue;
      }
      if (m.vm.vcpus !== want.vcpus || m.vm.memoryMib !== want.memoryMib || m.vm.workDiskGib !== want.workDiskGib) {
        i++;
        continue;
      }
      const ticket = this.d.ops.tryBegin(m.vm.name, "create");
      const row = ticket ? this.d.store.getVm(m.vm.name) : undefined;
      list.splice(i, 1);
      if (ticket && row?.id === m.vm.id && row.role === "pool") return { vm: row, ticket, snapshotId: m.snapshotId, readyAt: m.readyAt, fillMs: m.fillMs };
      ticket?.release();
    }
    if (this.size > 0) this.misses++;
    return undefined;
  }

  refill(): void {
    if (this.size === 0 || this.closed || this.job) return;
    this.job = this.run()
      .catch((e) => this.d.log.warn({ stage: "vm-pool", err: asBangerError(e).message }, "paused pool refill stopped"))
      .finally(() => {
        this.job = undefined;
        this.filling = undefined;
      });
  }

  interrupt(): void {
    this.current?.abort(new BangerError("CANCELLED", "a create started; the pool refills after it"));
  }

  async settled(): Promise<void> {
    await this.job;
  }

  async drop(imageId: string): Promise<void> {
    await this.job;
    const list = this.ready.get(imageId) ?? [];
    this.ready.delete(imageId);
    for (const m of list) await this.discard(m.vm, "its image's snapshot was removed or replaced");
  }

  async close(): Promise<void> {
    this.closed = true;
    // A member being restored is cancelled: its plan undoes it.
    this.abort.abort(new BangerError("CANCELLED", "bangerd is shutting down; the paused pool is discarded"));
    await this.job;
    for (const id of [...this.ready.keys()]) {
      const list = this.ready.get(id) ?? [];
      this.ready.delete(id);
      for (const m of list) await this.discard(m.vm, "bangerd is shutting down");
    }
  }

  stats(): PausedPoolStats {
    const all = [...this.ready.values()].flat();
    return {
      members: Object.fromEntries([...this.ready].filter(([, l]) => l.length > 0).map(([id, l]) => [id, l.length])),
      size: this.size,
      memoryMib: all.reduce((n, m) => n + m.vm.memoryMib, 0),
      maxMemoryMib: this.d.config.vmPoolMaxMemoryMib,
      misses: this.misses,
      ...(this.filling ? { filling: this.filling } : {}),
      ...(this.capped ? { capped: this.capped } : {}),
    };
  }

  private count(imageId: string): number {
    return this.ready.get(imageId)?.length ?? 0;
  }

  /** Creates, starts of golden or builder VMs: anything booting a guest a user waits for. */
  private busy(): boolean {
    return this.d.ops.inFlight("create").length > 0 || this.d.ops.inFlight("start").length > 0;
  }

  private async run(): Promise<void> {
    // An image whose member could not be made is not retried in the same pass: the next trigger will.
    const skip = new Set<string>();
    for (;;) {
      if (this.closed || this.busy()) return;
      const image = this.d.store.listImages().find((i) => i.status === "ok" && !skip.has(i.id) && this.count(i.id) < this.size);
      if (!image) return;
      if (!(await this.fillOne(image))) skip.add(image.id);
    }
  }

  /** The shape a create of this image asks for by default: the one its golden snapshot was taken at. */
  private draft(image: Image): Vm {
    const cfg = this.d.config;
    const id = randomUUID();
    const now = new Date().toISOString();
    return {
      id,
      name: `pool-${id.slice(0, 8)}`,
      imageId: image.id,
      imageName: image.name,
      state: "creating",
      vmm: cfg.vmm,
      vcpus: image.defaultVcpus ?? cfg.vcpus,
      memoryMib: image.defaultMemoryMib ?? cfg.memoryMib,
      workDiskGib: image.defaultWorkDiskGib ?? cfg.workDiskGib,
      nat: false,
      dir: join(cfg.vmsDir, id),
      workSeedFallback: !artifactOf(image, "work_seed"),
      role: "pool",
      createdAt: now,
      updatedAt: now,
    };
  }

  /** Room for one more member of this much memory: the pool's cap, then the host's MemAvailable. */
  private roomFor(image: Image, memoryMib: number): boolean {
    const max = this.d.config.vmPoolMaxMemoryMib;
    const used = this.stats().memoryMib;
    const available = this.d.host.memAvailableMib();
    let why: string | undefined;
    if (max > 0 && used + memoryMib > max) why = `the pool holds ${used} MiB of ${max} (vm_pool_max_memory_mib)`;
    else if (available !== undefined && available - memoryMib < HEADROOM_FACTOR * memoryMib) {
      why = `MemAvailable is ${available} MiB; a ${memoryMib} MiB member would leave less than ${HEADROOM_FACTOR}x its memory`;
    }
    if (!why) {
      this.capped = undefined;
      return true;
    }
    // Once per stretch at the cap, not on every trigger.
    if (!this.capped)
      this.d.log.warn({ stage: "vm-pool", image: image.name, usedMib: used, memoryMib, availableMib: available }, `paused pool not refilled: ${why}`);
    this.capped = why;
    return false;
  }

  private async fillOne(image: Image): Promise<boolean> {
    const d = this.d;
    let vm = this.draft(image);
    const vmm = d.vmm(vm.vmm);
    const source = await chooseBootSource(d, image, vm, vmm, {});
    if (source.kind !== "snapshot") return false;
    if (!this.roomFor(image, vm.memoryMib)) return false;
    const ticket = d.ops.tryBegin(vm.name, "create");
    if (!ticket) return false;
    const t0 = performance.now();
    this.filling = vm.name;
    try {
      d.store.insertVm(vm);
      this.current = new AbortController();
      const signal = AbortSignal.any([ticket.signal, this.abort.signal, this.current.signal]);
      const plan = new Plan(d.store, d.log, vm, "pool-fill", signal, d.config.eventsKeepOps);
      plan.path = "snapshot";
      const patch = (p: Partial<Vm>) => {
        vm = d.store.updateVm(vm.id, p);
      };
      const boot: BootContext = { d, image, vmm, vm: () => vm, patch };
      try {
        await plan.run(
          [leaseStage(d, plan, vm.id, patch), tapStage(boot), ...acquireStages({ ...boot, d }, source, () => undefined)],
          explainGuestFailure(d, vm.dir),
        );
      } catch (e) {
        const err = asBangerError(e);
        if (plan.undoFailures > 0) settleFailed(d, vm, e, "failed");
        // Never a create's failure: the next trigger tries again. Cancelled for a create is routine.
        d.log[err.code === "CANCELLED" ? "info" : "warn"](
          { vm: vm.name, stage: err.stage ?? "pool-fill", image: image.name, code: err.code, err: err.message },
          "paused pool refill failed",
        );
        return false;
      }
      plan.commit();
      const fillMs = Math.round(performance.now() - t0);
      const list = this.ready.get(image.id) ?? [];
      this.ready.set(image.id, list);
      list.push({ vm, snapshotId: source.snap.record.id, readyAt: Date.now(), fillMs });
      // The member may have taken the warm copies of the snapshot's disks; the disk pool makes more.
      d.diskPool.refill(image, snapshotDisks(source.snap, source.artifacts));
      d.log.info({ vm: vm.name, stage: "vm-pool", image: image.name, members: list.length, ms: fillMs }, "paused pool member ready");
      return true;
    } finally {
      this.filling = undefined;
      this.current = undefined;
      ticket.release();
    }
  }

  /** Everything the member holds goes: VMM (pid and start time), TAP, lease, disks, directory, row. */
  private async discard(member: Vm, why: string): Promise<void> {
    const ticket = this.d.ops.tryBegin(member.name, "delete");
    if (!ticket) return; // a create claimed it after all, or a shutdown is draining; reconcile removes what is left
    try {
      const vm = this.d.store.getVm(member.name);
      if (vm?.id !== member.id || vm.role !== "pool") return;
      await destroyVm(
        this.d,
        vm.state === "deleting" || vm.state === "failed" ? vm : transition(this.d, vm, "deleting"),
        `paused pool member discarded: ${why}`,
      );
    } catch (e) {
      this.d.log.error({ vm: member.name, stage: "vm-pool", err: asBangerError(e).message }, "could not discard a paused pool member");
    } finally {
      ticket.release();
    }
  }
}
