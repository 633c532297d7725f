import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { world } from "../helpers/app-world.js";
import Database from "better-sqlite3";
import { createVm } from "../../src/app/create.js";
import { removeVm, startVm, stopVm } from "../../src/app/lifecycle.js";
import { BangerError } from "../../src/domain/errors.js";
import { rotateConsoles } from "../../src/app/retention.js";
import { leases } from "../helpers/db.js";

function eventRows(dbFile: string): number {
  const raw = new Database(dbFile, { readonly: true });
  try {
    return (raw.prepare("SELECT COUNT(*) AS n FROM lifecycle_events").get() as { n: number }).n;
  } finally {
    raw.close();
  }
}

const STAGES = ["tap", "rootfs", "work-disk", "inject", "nat", "spawn-vmm", "configure", "start", "wait-ssh", "wait-services"];

describe("create plan", () => {
  it("runs every stage in order, records timings and holds the VM's resources", async () => {
    const { d, held, store } = world();
    const vm = await createVm(d, { image: "deb-1", name: "alp", nat: true });
    expect(vm.state).toBe("running");
    expect(vm.ip).toBe("172.30.0.2");
    expect(held.taps.size).toBe(1);
    expect([...held.nat]).toEqual(["172.30.0.2"]);
    const stages = store.events(vm.id).map((e) => e.stage);
    expect(stages).toEqual(["lease-ip", ...STAGES, "total"]);
    expect(existsSync(join(vm.dir, "known_hosts"))).toBe(true);
  });

  it.each(STAGES)("a failure at %s undoes everything and names the stage", async (stage) => {
    const { d, held, store, cfg } = world(stage);
    const err = await createVm(d, { image: "deb-1", name: "alp", nat: true }).catch((e) => e as BangerError);
    expect(err).toBeInstanceOf(BangerError);
    expect((err as BangerError).stage).toBe(stage);
    expect((err as BangerError).message).toMatch(new RegExp(`create of VM alp failed at stage ${stage}: .*injected failure`));
    if (["wait-ssh", "wait-services"].includes(stage)) expect((err as BangerError).message).toMatch(/guest console/);
    expect(store.listVms()).toEqual([]);
    expect(leases(store)).toEqual([]);
    expect(held.taps.size).toBe(0);
    expect(held.nat.size).toBe(0);
    expect(held.procs.size).toBe(0);
    expect(readdirSync(cfg.paths.vmsDir)).toEqual([]);
    // The VM row went with the rollback, and so did every event, including the undo recorded after it.
    expect(eventRows(cfg.paths.dbFile)).toBe(0);
  });

  it("stop releases the TAP and NAT but keeps the lease; start takes them again; rm frees everything", async () => {
    const { d, held, store, cfg } = world();
    const vm = await createVm(d, { image: "deb-1", name: "alp", nat: true });
    await stopVm(d, "alp");
    expect(held.taps.size + held.nat.size + held.procs.size).toBe(0);
    expect(leases(store)).toEqual([{ ip: vm.ip, vmId: vm.id }]);
    const again = await startVm(d, "alp");
    expect(again.state).toBe("running");
    expect(again.ip).toBe(vm.ip);
    expect(held.taps.size).toBe(1);
    await expect(removeVm(d, "alp", false)).rejects.toMatchObject({ code: "VM_STATE" });
    await removeVm(d, "alp", true);
    expect(held.taps.size + held.nat.size + held.procs.size).toBe(0);
    expect(leases(store)).toEqual([]);
    expect(store.listVms()).toEqual([]);
    expect(eventRows(cfg.paths.dbFile)).toBe(0);
  });

  it("rotates the console of each VM over console_log_max_mib, and the failure tail reads across it", async () => {
    const { d } = world(undefined, 0, { extraToml: "console_log_max_mib = 1\n" });
    const big = await createVm(d, { image: "deb-1", name: "big" });
    const small = await createVm(d, { image: "deb-1", name: "small" });
    writeFileSync(join(big.dir, "console.log"), `${"x".repeat(1024 * 1024)}\nlast boot line\n`);
    expect(await rotateConsoles(d)).toEqual(["big"]);
    expect(await rotateConsoles(d)).toEqual([]);
    expect(readdirSync(small.dir)).not.toContain("console.log.1");
    const r = await d.console.read(big.dir, 0, 64);
    expect(r.start).toBe(16);
    expect(r.size).toBe(1024 * 1024 + 16);
    expect(await d.console.tail(big.dir, 1)).toBe("last boot line");
  });

  it("records each run as its own operation and keeps only the last events_keep_ops of them", async () => {
    const { d, store } = world(undefined, 0, { extraToml: "events_keep_ops = 3\n" });
    const vm = await createVm(d, { image: "deb-1", name: "alp" });
    const createOp = store.events(vm.id)[0].opId;
    expect(new Set(store.events(vm.id).map((e) => e.opId))).toEqual(new Set([createOp]));
    for (let i = 0; i < 3; i++) {
      await stopVm(d, "alp");
      await startVm(d, "alp");
    }
    const evs = store.events(vm.id);
    const ops = [...new Set(evs.map((e) => e.opId))];
    expect(ops).toHaveLength(3);
    expect(ops.every((o) => o > createOp)).toBe(true);
    expect(ops.map((o) => evs.find((e) => e.opId === o)!.op)).toEqual(["start", "stop", "start"]);
    for (const o of ops) expect(evs.filter((e) => e.opId === o).at(-1)!.stage).toBe("total");
  });

  it("takes disks from the warm pool once it is filled, and refills after the create", async () => {
    const { d, store } = world(undefined, 1);
    const img = store.getImage("deb-1")!;
    d.diskPool.refill(img);
    await d.diskPool.settled();
    expect(d.diskPool.stats()).toEqual({ img1: 1 });
    const vm = await createVm(d, { image: "deb-1", name: "warm", workDiskGib: d.config.workDiskGib });
    const ev = store.events(vm.id);
    expect(ev.find((e) => e.stage === "rootfs")?.detail).toBe("from warm pool");
    expect(ev.find((e) => e.stage === "inject")?.detail).toMatch(/pre-injected/);
    expect(existsSync(join(vm.dir, "rootfs.ext4")) && existsSync(join(vm.dir, "work.ext4"))).toBe(true);
    await d.diskPool.settled();
    expect(d.diskPool.stats()).toEqual({ img1: 1 });
    // A size the pool does not hold takes the cold path.
    const cold = await createVm(d, { image: "deb-1", name: "cold", workDiskGib: 3 });
    expect(store.events(cold.id).find((e) => e.stage === "rootfs")?.detail).toBeUndefined();
  });

  it("refuses duplicate names and generates valid names when none is given", async () => {
    const { d } = world();
    await createVm(d, { image: "deb-1", name: "alp" });
    await expect(createVm(d, { image: "deb-1", name: "alp" })).rejects.toMatchObject({ code: "VM_EXISTS" });
    const gen = await createVm(d, { image: "deb-1" });
    expect(gen.name).toMatch(/^[a-z]+-[a-z]+$/);
  });
});
