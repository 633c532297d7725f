import { readdirSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { createVm } from "../../src/app/create.js";
import { ImageService } from "../../src/app/images.js";
import { vmPoolCheck } from "../../src/app/doctor.js";
import { removeVm } from "../../src/app/lifecycle.js";
import { reconcile } from "../../src/app/reconcile.js";
import { listVms } from "../../src/app/vm-lookup.js";
import { BangerError } from "../../src/domain/errors.js";
import type { VmmSnapshots } from "../../src/ports/snapshots.js";
import type { VmmSpec } from "../../src/ports/vmm.js";
import { leases } from "../helpers/db.js";
import { world, type WorldOptions } from "../helpers/app-world.js";
import { withSnapshot } from "../helpers/snap-world.js";

const PROXY = ["/usr/bin/banger-vsock", "--socket", "/run/b.sock"];

type World = ReturnType<typeof world>;

/**
 * A world with the QEMU snapshot driver faked: restores are recorded and their "processes" are
 * held like spawned ones (so a pool member's VMM is alive until killed); `failResume` fails the
 * next n resumes.
 */
function poolWorld(toml: string, opts: WorldOptions & { failResume?: number; failRestore?: boolean } = {}) {
  const restored: VmmSpec[] = [];
  const resumed: number[] = [];
  let failResume = opts.failResume ?? 0;
  let pid = 5000;
  let w: World | undefined;
  const snaps: VmmSnapshots = {
    kind: "qemu",
    snapshot: () => Promise.reject(new Error("unused")),
    restore: async (spec) => {
      if (opts.failRestore) throw new BangerError("VMM_FAILED", "incoming migration failed: bad magic");
      restored.push(spec);
      const p = pid++;
      w!.held.procs.add(p);
      return { kind: "qemu", pid: p, pidStart: 1, controlSocket: join(spec.dir, "qmp.sock"), consoleLog: join(spec.dir, "console.log") };
    },
    resume: async (h) => {
      if (failResume > 0) {
        failResume--;
        throw new BangerError("VMM_FAILED", "guest did not resume");
      }
      resumed.push(h.pid);
    },
  };
  w = world(undefined, 0, {
    snapshots: snaps,
    channelProxy: PROXY,
    shell: () => ({ code: 0, lines: ["reidentified"] }),
    extraToml: toml,
    ...opts,
  });
  return { w, restored, resumed };
}

async function filled(w: World) {
  w.d.vmPool.refill();
  await w.d.vmPool.settled();
  return w.d.vmPool.stats();
}

const opStages = (w: World, vmId: string, op: string) =>
  w.store
    .events(vmId)
    .filter((e) => e.op === op && e.outcome === "ok")
    .map((e) => e.stage);

const poolRows = (w: World) => w.store.listVms().filter((v) => v.role === "pool");

describe("paused-VM pool", () => {
  it("is off by default: no refill, every create restores itself", async () => {
    const { w, restored } = poolWorld("");
    await withSnapshot(w);
    expect((await filled(w)).members).toEqual({});
    const vm = await createVm(w.d, { image: "deb-1", name: "alp" });
    expect(vm.bootSource).toBe("snapshot snap-1");
    expect(restored).toHaveLength(1);
    await w.d.vmPool.settled();
    expect(poolRows(w)).toEqual([]);
  });

  it("fills a paused member, hidden from vm ls; a create claims it and runs only the finishing stages; the pool refills", async () => {
    const { w, restored, resumed } = poolWorld("vm_pool_size = 1\n");
    await withSnapshot(w);
    expect((await filled(w)).members).toEqual({ img1: 1 });
    const [member] = poolRows(w);
    expect(member).toMatchObject({ state: "creating", role: "pool", nat: false, bootSource: "snapshot snap-1" });
    expect(member.name).toMatch(/^pool-[0-9a-f]{8}$/);
    expect(opStages(w, member.id, "pool-fill")).toEqual(["lease-ip", "tap", "disks", "restore", "total"]);
    expect(listVms(w.d)).toEqual([]);
    expect(resumed).toEqual([]); // paused: never resumed by the pool

    const vm = await createVm(w.d, { image: "deb-1", name: "alp", nat: true, owner: { uid: 1001, name: "ann" } });
    expect(vm).toMatchObject({
      id: member.id,
      name: "alp",
      state: "running",
      nat: true,
      ownerUid: 1001,
      ownerName: "ann",
      bootSource: "snapshot snap-1 (pool)",
    });
    expect(vm.role).toBeUndefined();
    expect(vm.ip).toBe(member.ip);
    expect(opStages(w, vm.id, "create")).toEqual(["claim", "secret", "nat", "resume", "reidentify", "wait-ssh", "wait-services", "total"]);
    expect(resumed).toEqual([member.pid]);
    expect([...w.held.nat]).toEqual([vm.ip]);
    // The clone's own password was written by re-identity, not the pool.
    expect(w.shellCalls[0].input).toContain("OPENCODE_SERVER_PASSWORD=");
    // createVm triggers the refill once its lock is released.
    await w.d.vmPool.settled();
    expect(w.d.vmPool.stats().members).toEqual({ img1: 1 });
    expect(restored).toHaveLength(2);
    expect(listVms(w.d).map((v) => v.name)).toEqual(["alp"]);
  });

  it("a create at another shape, with --cold, or with the snapshot replaced does not take the member; a stale member is discarded", async () => {
    const { w } = poolWorld("vm_pool_size = 1\n");
    await withSnapshot(w);
    await filled(w);
    const [member] = poolRows(w);
    const cold = await createVm(w.d, { image: "deb-1", name: "c1", cold: true });
    expect(cold.bootSource).toMatch(/^cold: --cold/);
    await withSnapshot(w, { id: "snap-2" });
    const vm = await createVm(w.d, { image: "deb-1", name: "c2" });
    expect(vm.bootSource).toBe("snapshot snap-2");
    await w.d.vmPool.settled();
    await new Promise((r) => setTimeout(r, 20)); // the discard runs in the background
    expect(w.store.getVm(member.name)).toBeUndefined();
    expect(w.held.procs.has(member.pid!)).toBe(false);
    expect(leases(w.store).map((l) => l.vmId)).not.toContain(member.id);
    // The refill after c2 restored a member of the new snapshot.
    expect(poolRows(w).map((v) => v.bootSource)).toEqual(["snapshot snap-2"]);
  });

  it("two creates at once never get the same member", async () => {
    const { w } = poolWorld("vm_pool_size = 1\n");
    await withSnapshot(w);
    await filled(w);
    const [a, b] = await Promise.all([createVm(w.d, { image: "deb-1", name: "a" }), createVm(w.d, { image: "deb-1", name: "b" })]);
    expect([a.bootSource, b.bootSource].sort()).toEqual(["snapshot snap-1", "snapshot snap-1 (pool)"]);
    expect(a.id).not.toBe(b.id);
  });

  it("a member that fails at resume is destroyed and the same create restores afresh", async () => {
    const { w, restored } = poolWorld("vm_pool_size = 1\n", { failResume: 1 });
    await withSnapshot(w);
    await filled(w);
    const [member] = poolRows(w);
    const vm = await createVm(w.d, { image: "deb-1", name: "alp", nat: true });
    expect(vm.bootSource).toBe("snapshot snap-1");
    expect(vm.id).not.toBe(member.id);
    expect(w.store.listVms().find((v) => v.id === member.id)).toBeUndefined();
    expect(w.held.procs.has(member.pid!)).toBe(false);
    expect(restored).toHaveLength(2);
    await w.d.vmPool.settled();
    // Only alp and the refilled member hold anything.
    expect(w.held.taps.size).toBe(2);
    expect([...w.held.nat]).toEqual([vm.ip]);
    await w.d.vmPool.close();
    await removeVm(w.d, "alp", true);
    expect(w.held.procs.size + w.held.taps.size + w.held.nat.size).toBe(0);
    expect(leases(w.store)).toEqual([]);
    expect(readdirSync(w.cfg.paths.vmsDir)).toEqual([]);
  });

  it("does not refill while a create is in flight", async () => {
    const { w } = poolWorld("vm_pool_size = 1\n");
    await withSnapshot(w);
    const t = w.d.ops.begin("someone", "create");
    expect((await filled(w)).members).toEqual({});
    t.release();
    expect((await filled(w)).members).toEqual({ img1: 1 });
  });

  it("a create that begins while a member is being restored cancels that restore (undone); the pool refills after the create", async () => {
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    let first = true;
    const gate = async (stage: string) => {
      if (stage === "tap" && first) {
        first = false;
        await blocked;
      }
    };
    const { w, restored } = poolWorld("vm_pool_size = 1\n", { gate });
    await withSnapshot(w);
    w.d.vmPool.refill();
    await new Promise((r) => setTimeout(r, 20));
    const cancelled = w.d.vmPool.stats().filling;
    expect(cancelled).toMatch(/^pool-/);
    const creating = createVm(w.d, { image: "deb-1", name: "alp" });
    release();
    const vm = await creating;
    expect(vm.bootSource).toBe("snapshot snap-1");
    await w.d.vmPool.settled();
    // The cancelled member never reached restore; the refill after the create made one.
    expect(restored).toHaveLength(2);
    expect(w.d.vmPool.stats().members).toEqual({ img1: 1 });
    expect(w.store.getVm(cancelled!)).toBeUndefined();
    expect(poolRows(w).map((v) => v.name)).not.toContain(cancelled);
    expect(w.held.taps.size).toBe(2);
    expect(leases(w.store)).toHaveLength(2);
  });

  it("stops at vm_pool_max_memory_mib and at the host's MemAvailable headroom", async () => {
    const capped = poolWorld("vm_pool_size = 2\nvm_pool_max_memory_mib = 1500\n").w;
    await withSnapshot(capped);
    expect((await filled(capped)).members).toEqual({ img1: 1 }); // 1024 fits, 2048 does not
    expect(vmPoolCheck(capped.d)).toMatchObject({
      name: "vm-pool",
      status: "WARN",
      detail: expect.stringContaining("deb-1 1 of 2 per image; 1024 MiB of 1500 MiB"),
    });
    const lowMem = poolWorld("vm_pool_size = 1\n", { memAvailableMib: 3000 }).w;
    await withSnapshot(lowMem);
    expect((await filled(lowMem)).members).toEqual({}); // 3000 - 1024 < 2 x 1024
    const enough = poolWorld("vm_pool_size = 1\nvm_pool_max_memory_mib = 0\n", { memAvailableMib: 3100 }).w;
    await withSnapshot(enough);
    expect((await filled(enough)).members).toEqual({ img1: 1 });
    expect(vmPoolCheck(enough.d)).toMatchObject({ status: "PASS", detail: "deb-1 1 of 1 per image; 1024 MiB, no cap" });
  });

  it("a failed refill is logged with vm and stage, leaves nothing, and never fails a create", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: "warn" }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
    const { w } = poolWorld("vm_pool_size = 1\n", { failRestore: true, log });
    await withSnapshot(w);
    expect((await filled(w)).members).toEqual({});
    const warn = lines.find((l) => l.msg === "paused pool refill failed");
    expect(warn).toMatchObject({ stage: "restore", image: "deb-1" });
    expect(String(warn?.vm)).toMatch(/^pool-/);
    expect(w.store.listVms()).toEqual([]);
    expect(w.held.procs.size + w.held.taps.size).toBe(0);
    const vm = await createVm(w.d, { image: "deb-1", name: "alp" });
    expect(vm.bootSource).toMatch(/^cold: restore from the snapshot failed at restore/);
  });

  it("reconcile at daemon start discards members (never adopts them); image rm and close discard theirs", async () => {
    const { w } = poolWorld("vm_pool_size = 1\n");
    await withSnapshot(w);
    await filled(w);
    const [member] = poolRows(w);
    // As after kill -9: the row and the paused VMM are still there, the pool object is new.
    const report = await reconcile(w.d);
    expect(report.discardedPool).toEqual([member.name]);
    expect(w.store.listVms()).toEqual([]);
    expect(w.held.procs.size + w.held.taps.size).toBe(0);
    expect(leases(w.store)).toEqual([]);
    expect(readdirSync(w.cfg.paths.vmsDir)).toEqual([]);

    // image rm: the members are the pool's, not users of the image; they go first, then the image.
    const third = poolWorld("vm_pool_size = 1\n").w;
    await withSnapshot(third);
    await filled(third);
    await new ImageService(third.d).remove("deb-1");
    expect(third.store.listVms()).toEqual([]);
    expect(third.store.getImage("deb-1")).toBeUndefined();
    expect(third.held.procs.size + third.held.taps.size).toBe(0);

    const second = poolWorld("vm_pool_size = 1\n").w;
    await withSnapshot(second);
    await filled(second);
    await second.d.vmPool.drop("img1");
    expect(poolRows(second)).toEqual([]);
    await filled(second);
    await second.d.vmPool.close();
    expect(second.store.listVms()).toEqual([]);
    expect(second.held.procs.size + second.held.taps.size).toBe(0);
    second.d.vmPool.refill(); // closed: a no-op
    await second.d.vmPool.settled();
    expect(second.store.listVms()).toEqual([]);
  });
});
