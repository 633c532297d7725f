import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { world } from "../helpers/app-world.js";
import { createVm } from "../../src/app/create.js";
import { removeVm, startVm, stopVm } from "../../src/app/lifecycle.js";
import { BangerError } from "../../src/domain/errors.js";

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
    expect(store.listLeases()).toEqual([]);
    expect(held.taps.size).toBe(0);
    expect(held.nat.size).toBe(0);
    expect(held.procs.size).toBe(0);
    expect(readdirSync(cfg.paths.vmsDir)).toEqual([]);
  });

  it("stop releases the TAP and NAT but keeps the lease; start takes them again; rm frees everything", async () => {
    const { d, held, store } = world();
    const vm = await createVm(d, { image: "deb-1", name: "alp", nat: true });
    await stopVm(d, "alp");
    expect(held.taps.size + held.nat.size + held.procs.size).toBe(0);
    expect(store.listLeases()).toEqual([{ ip: vm.ip, vmId: vm.id }]);
    const again = await startVm(d, "alp");
    expect(again.state).toBe("running");
    expect(again.ip).toBe(vm.ip);
    expect(held.taps.size).toBe(1);
    await expect(removeVm(d, "alp", false)).rejects.toMatchObject({ code: "VM_STATE" });
    await removeVm(d, "alp", true);
    expect(held.taps.size + held.nat.size + held.procs.size).toBe(0);
    expect(store.listLeases()).toEqual([]);
    expect(store.listVms()).toEqual([]);
  });

  it("takes disks from the warm pool once it is filled, and refills after the create", async () => {
    const { d, store } = world(undefined, 1);
    const img = store.getImage("deb-1")!;
    d.diskPool.refill(img);
    await d.diskPool.settled();
    expect(d.diskPool.stats()).toEqual({ img1: 1 });
    const vm = await createVm(d, { image: "deb-1", name: "warm", workDiskGib: d.cfg.config.work_disk_gib });
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
