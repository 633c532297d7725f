import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/adapters/sqlite/store.js";
import { createVm } from "../../src/app/create.js";
import type { AppDeps } from "../../src/app/deps.js";
import { DiskPool } from "../../src/app/disk-pool.js";
import { removeVm, startVm, stopVm } from "../../src/app/lifecycle.js";
import { loadConfig } from "../../src/config/load.js";
import { BangerError } from "../../src/domain/errors.js";
import { NameGenerator, seededRandom } from "../../src/domain/names.js";
import type { Disks } from "../../src/ports/disks.js";
import type { Guest } from "../../src/ports/guest.js";
import type { Network } from "../../src/ports/network.js";
import type { Vmm, VmmHandle } from "../../src/ports/vmm.js";

/** Port fakes that record what is held, so every failure path can be checked for leaks. */
function world(failAt?: string, poolSize = 0) {
  const dir = mkdtempSync(join(tmpdir(), "banger-plan-"));
  const cfgFile = join(dir, "config.toml");
  writeFileSync(cfgFile, `vmm = "qemu"\nstate_dir = "${dir}/state"\nsocket = "${dir}/s.sock"\n`);
  const cfg = loadConfig({ env: { env: { BANGER_CONFIG: cfgFile }, uid: 1000, home: dir } });
  mkdirSync(cfg.paths.vmsDir, { recursive: true });
  const store = SqliteStore.open(cfg.paths.dbFile);
  const held = { taps: new Set<string>(), nat: new Set<string>(), procs: new Set<number>() };
  const boom = (stage: string) => { if (failAt === stage) throw new BangerError("INTERNAL", `injected failure at ${stage}`); };
  let nextTap = 0;
  let nextPid = 1000;
  const network: Network = {
    ensureHost: async () => undefined,
    acquireTap: async () => { boom("tap"); const t = `tap-pool-${nextTap++}`; held.taps.add(t); return t; },
    releaseTap: async (t) => { held.taps.delete(t); },
    enableNat: async (ip) => { boom("nat"); held.nat.add(ip); },
    disableNat: async (ip) => { held.nat.delete(ip); },
    status: async () => { throw new Error("unused"); },
    listTaps: async () => [...held.taps],
    adopt: async () => undefined,
    close: async () => undefined,
  };
  const disks: Disks = {
    cloneRootfs: async (_s, dst) => { boom("rootfs"); writeFileSync(dst, "rootfs"); },
    makeWorkDisk: async (dst) => { boom("work-disk"); writeFileSync(dst, "work"); },
    inject: async () => { boom("inject"); },
    ext4Problem: async () => undefined,
  };
  const vmm: Vmm = {
    kind: "qemu",
    guestStopCommand: "poweroff",
    spawn: async (spec) => { boom("spawn-vmm"); const pid = nextPid++; held.procs.add(pid); return { kind: "qemu", pid, pidStart: 1, controlSocket: join(spec.dir, "qmp.sock"), consoleLog: join(spec.dir, "console.log") }; },
    configure: async () => boom("configure"),
    start: async (h: VmmHandle) => { boom("start"); writeFileSync(h.consoleLog, "Linux version 6.1\nlogin:\n"); },
    stop: async (h) => { held.procs.delete(h.pid); return { how: "vmm-request", ms: 0 }; },
    kill: async (h) => { held.procs.delete(h.pid); },
    isAlive: (h) => held.procs.has(h.pid),
    version: async () => "fake",
  };
  const guest: Guest = {
    waitSsh: async () => boom("wait-ssh"),
    waitPort: async () => boom("wait-services"),
    exec: async () => ({ code: 0, stdout: "", stderr: "" }),
  };
  const keyPath = join(dir, "id");
  writeFileSync(`${keyPath}.pub`, "ssh-ed25519 AAAA test\n");
  const d = {
    cfg, store, network, disks, guest, log: pino({ level: "silent" }), names: new NameGenerator(seededRandom(1)),
    runner: { run: async () => ({ code: 0, stdout: "", stderr: "" }) },
    vmm: () => vmm,
    probes: { vmmVersion: async () => "x", accelVerdict: async () => ({ accel: "tcg", reason: "test" }), sshKeyProblem: async () => undefined },
    sshKey: async () => keyPath,
    hostKey: async () => ({ privateKey: "PRIV", publicKey: "ssh-ed25519 HOSTKEY banger" }),
    sha256File: async () => "0".repeat(64),
    copyFile: async () => undefined,
  } as Omit<AppDeps, "diskPool"> as AppDeps;
  d.diskPool = new DiskPool(d, join(dir, "pool"), poolSize);
  const imgDir = join(dir, "img");
  mkdirSync(imgDir);
  store.insertImage({
    id: "img1", name: "deb-1", bootArgs: "console=ttyS0", guest: { os: "debian", services: [{ name: "ssh", port: 22 }, { name: "opencode", port: 4096 }] },
    artifacts: [
      { role: "kernel", path: join(imgDir, "vmlinux"), sha256: "a".repeat(64), sizeBytes: 1 },
      { role: "rootfs", path: join(imgDir, "rootfs.ext4"), sha256: "b".repeat(64), sizeBytes: 1 },
      { role: "work_seed", path: join(imgDir, "seed.ext4"), sha256: "c".repeat(64), sizeBytes: 1 },
    ],
  });
  return { d, held, store, cfg };
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
