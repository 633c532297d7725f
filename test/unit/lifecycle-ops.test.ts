import { existsSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { world } from "../helpers/app-world.js";
import { createVm } from "../../src/app/create.js";
import { removeVm, startVm, stopVm } from "../../src/app/lifecycle.js";
import { LivenessWatcher } from "../../src/app/liveness.js";
import { VmOps } from "../../src/app/vm-ops.js";
import { BangerError } from "../../src/domain/errors.js";
import { leases } from "../helpers/db.js";

/** A gate that holds one stage until released, so a second operation can be started in the middle of the first. */
function latch(stage: string) {
  let open!: () => void;
  let reached!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const arrived = new Promise<void>((r) => (reached = r));
  let armed = true;
  return {
    gate: async (s: string) => {
      if (s !== stage || !armed) return;
      armed = false;
      reached();
      await opened;
    },
    arrived,
    open: () => open(),
  };
}

const errOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as BangerError,
  );

describe("lifecycle transitions with port fakes", () => {
  it("create: creating -> running", async () => {
    const { d } = world();
    const vm = await createVm(d, { image: "deb-1", name: "a" });
    expect(vm.state).toBe("running");
    expect(d.ops.current("a")).toBeUndefined();
  });

  it("create: a clean rollback leaves no row; a broken one leaves the VM failed with the reason", async () => {
    const { d, store } = world("wait-ssh", 0, { broken: new Set(["releaseTap"]) });
    const err = await errOf(createVm(d, { image: "deb-1", name: "a" }));
    expect(err?.stage).toBe("wait-ssh");
    const vm = store.getVm("a")!;
    expect(vm.state).toBe("failed");
    expect(vm.lastError).toMatch(/failed at stage wait-ssh/);
    // failed -> deleting -> gone, once the host cooperates again
    await expect(startVm(d, "a")).rejects.toMatchObject({ code: "VM_STATE" });
    await expect(stopVm(d, "a")).rejects.toMatchObject({ code: "VM_STATE" });
  });

  it("a full disk during a create is DISK_FAILED naming the stage and the place to free, not INTERNAL", async () => {
    const full = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", path: "/var/lib/banger/vms/x/known_hosts" });
    const { d, store } = world(undefined, 0, {
      gate: async (s) => {
        if (s === "spawn-vmm") throw full;
      },
    });
    const err = await errOf(createVm(d, { image: "deb-1", name: "a" }));
    expect(err).toMatchObject({ code: "DISK_FAILED", stage: "spawn-vmm" });
    expect(err?.hint).toMatch(/free space .*\/var\/lib\/banger\/vms\/x\/known_hosts/);
    expect(store.listVms()).toEqual([]);
  });

  it("stop: running -> stopping -> stopped, and stop of a stopped VM is refused", async () => {
    const { d, held } = world();
    await createVm(d, { image: "deb-1", name: "a" });
    const vm = await stopVm(d, "a");
    expect(vm.state).toBe("stopped");
    expect(vm.pid).toBeUndefined();
    expect(held.procs.size + held.taps.size).toBe(0);
    await expect(stopVm(d, "a")).rejects.toMatchObject({ code: "VM_STATE" });
  });

  it("stop: the in-guest command counts only when the guest acknowledged it; an unreachable guest gets no grace period", async () => {
    let answer = { code: 255, stdout: "", stderr: "ssh: connect to host 172.30.0.2 port 22: No route to host" };
    const commands: string[] = [];
    const { d, held } = world(undefined, 0, {
      exec: (c) => {
        commands.push(c);
        return answer;
      },
    });
    await createVm(d, { image: "deb-1", name: "a" });
    await stopVm(d, "a");
    expect(held.stops.at(-1)?.graceMs).toBe(0);
    expect(commands.at(-1)).toMatch(/&& poweroff$/);
    await startVm(d, "a");
    // The guest ran the command and then its sshd went away: 255 as well, but acknowledged.
    answer = { code: 255, stdout: "banger-stop-accepted\n", stderr: "Connection to 172.30.0.2 closed by remote host." };
    const vm = await stopVm(d, "a");
    expect(held.stops.at(-1)?.graceMs).toBeGreaterThan(0);
    expect(
      d.store
        .events(vm.id)
        .filter((e) => e.stage === "guest-stop")
        .at(-1)?.detail,
    ).toBe("poweroff over SSH");
  });

  it("stop: a VMM that will not die leaves the VM failed, and only rm is accepted", async () => {
    const broken = new Set<string>();
    const { d } = world(undefined, 0, { broken });
    await createVm(d, { image: "deb-1", name: "a" });
    broken.add("stop");
    await expect(stopVm(d, "a")).rejects.toMatchObject({ code: "VMM_FAILED" });
    expect(d.store.getVm("a")).toMatchObject({ state: "failed", lastError: expect.stringMatching(/survived SIGKILL/) });
    await expect(startVm(d, "a")).rejects.toMatchObject({ code: "VM_STATE" });
    broken.clear();
    await removeVm(d, "a", false);
    expect(d.store.getVm("a")).toBeUndefined();
  });

  it("start: stopped -> starting -> running; a failed start is undone back to stopped with lastError", async () => {
    const { d, held } = world();
    await createVm(d, { image: "deb-1", name: "a" });
    await stopVm(d, "a");
    const again = await startVm(d, "a");
    expect(again.state).toBe("running");
    await expect(startVm(d, "a")).rejects.toMatchObject({ code: "VM_STATE" });
    await stopVm(d, "a");

    const failing = world("spawn-vmm");
    await createVm(failing.d, { image: "deb-1", name: "b", noWait: true }).catch(() => undefined);
    expect(failing.d.store.getVm("b")).toBeUndefined(); // create failed cleanly: nothing
    expect(held.taps.size).toBe(0);
  });

  it("start: failure after spawn rolls back to stopped with the reason, not running", async () => {
    let fail = false;
    const { d, held } = world(undefined, 0, {
      gate: async (s) => {
        if (fail && s === "wait-ssh") throw new BangerError("GUEST_NOT_READY", "no ssh");
      },
    });
    await createVm(d, { image: "deb-1", name: "a" });
    await stopVm(d, "a");
    fail = true;
    await expect(startVm(d, "a")).rejects.toMatchObject({ code: "GUEST_NOT_READY", stage: "wait-ssh" });
    const vm = d.store.getVm("a")!;
    expect(vm.state).toBe("stopped");
    expect(vm.lastError).toMatch(/no ssh/);
    expect(vm.tap).toBeUndefined();
    expect(held.procs.size + held.taps.size).toBe(0);
    fail = false;
    expect((await startVm(d, "a")).lastError).toBeUndefined();
  });

  it("exit: the reconciler records a VMM that ended by itself exactly once, and never inside an operation", async () => {
    const { d, held } = world();
    await createVm(d, { image: "deb-1", name: "a", nat: true });
    const watcher = new LivenessWatcher(d, 60_000);
    expect(await watcher.tick()).toEqual([]);
    held.procs.clear(); // the guest powered itself off
    const t = d.ops.begin("a", "stop"); // an operation holds the VM: hands off
    expect(await watcher.tick()).toEqual([]);
    expect(d.store.getVm("a")?.state).toBe("running");
    t.release();
    const [first, second] = await Promise.all([watcher.tick(), watcher.tick()]);
    expect(first).toEqual(["a"]);
    expect(second).toEqual(["a"]); // the same pass, shared
    expect(await watcher.tick()).toEqual([]);
    const vm = d.store.getVm("a")!;
    expect(vm).toMatchObject({ state: "stopped", lastError: expect.stringMatching(/outside banger/) });
    expect(held.taps.size + held.nat.size).toBe(0);
    expect(d.store.events(vm.id).filter((e) => e.op === "exit" && e.stage === "release-net")).toHaveLength(1);
  });

  it("delete: stopped and running (--force) go through deleting to nothing; a VMM that survives leaves it failed", async () => {
    const broken = new Set<string>();
    const { d, cfg } = world(undefined, 0, { broken });
    await createVm(d, { image: "deb-1", name: "a" });
    await createVm(d, { image: "deb-1", name: "b" });
    await stopVm(d, "a");
    await removeVm(d, "a", false);
    broken.add("kill");
    await expect(removeVm(d, "b", true)).rejects.toMatchObject({ code: "VMM_FAILED" });
    expect(d.store.getVm("b")?.state).toBe("failed");
    broken.clear();
    await removeVm(d, "b", true);
    expect(d.store.listVms()).toEqual([]);
    expect(readdirSync(cfg.paths.vmsDir)).toEqual([]);
  });
});

describe("one operation per VM", () => {
  it("concurrent starts: exactly one runs, the others get VM_BUSY naming it", async () => {
    const w = world();
    await createVm(w.d, { image: "deb-1", name: "a" });
    await stopVm(w.d, "a");
    const results = await Promise.all(Array.from({ length: 10 }, () => errOf(startVm(w.d, "a", { noWait: true }))));
    const busy = results.filter((e): e is BangerError => e?.code === "VM_BUSY");
    expect(results.filter((e) => e === undefined)).toHaveLength(1);
    expect(busy).toHaveLength(9);
    expect(busy[0].message).toMatch(/start in progress/);
    expect(w.held.procs.size).toBe(1);
    expect(w.held.taps.size).toBe(1);
    expect(w.store.getVm("a")?.state).toBe("running");
  });

  it("rm --force during a start cancels the start, which undoes itself, then removes the VM", async () => {
    const l = latch("wait-ssh");
    let armed = false;
    const { d, held, cfg } = world(undefined, 0, {
      gate: async (s) => {
        if (armed) await l.gate(s);
      },
    });
    await createVm(d, { image: "deb-1", name: "a" });
    await stopVm(d, "a");
    armed = true;
    const start = errOf(startVm(d, "a"));
    await l.arrived;
    expect(d.store.getVm("a")?.state).toBe("starting");
    const rm = removeVm(d, "a", true);
    l.open();
    expect(await rm).toEqual({ removed: "a", cancelled: "start" });
    expect(await start).toMatchObject({ code: "CANCELLED", message: expect.stringMatching(/rm --force/) });
    expect(held.procs.size + held.taps.size).toBe(0);
    expect(d.store.listVms()).toEqual([]);
    expect(existsSync(cfg.paths.vmsDir) ? readdirSync(cfg.paths.vmsDir) : []).toEqual([]);
  });

  it("stop during rm is refused with VM_BUSY; the rm completes", async () => {
    const { d } = world();
    await createVm(d, { image: "deb-1", name: "a" });
    const ticket = d.ops.begin("a", "delete"); // stands for an rm in progress
    await expect(stopVm(d, "a")).rejects.toMatchObject({ code: "VM_BUSY", message: expect.stringMatching(/delete in progress/) });
    ticket.release();
    await removeVm(d, "a", true);
    expect(d.store.getVm("a")).toBeUndefined();
  });

  it("a client that goes away cancels a create: everything is undone", async () => {
    const l = latch("wait-ssh");
    const { d, held, store, cfg } = world(undefined, 0, { gate: (s) => l.gate(s) });
    const client = new AbortController();
    const create = errOf(createVm(d, { image: "deb-1", name: "a", nat: true }, { signal: client.signal }));
    await l.arrived;
    client.abort();
    l.open();
    expect(await create).toMatchObject({ code: "CANCELLED", stage: "wait-ssh", message: expect.stringMatching(/client went away/) });
    expect(store.listVms()).toEqual([]);
    expect(leases(store)).toEqual([]);
    expect(held.procs.size + held.taps.size + held.nat.size).toBe(0);
    expect(readdirSync(cfg.paths.vmsDir)).toEqual([]);
  });

  it("shutdown drains: creates are cancelled and undone, a stop is let finish, new operations are refused", async () => {
    const l = latch("wait-ssh");
    const { d, held, store } = world(undefined, 0, { gate: (s) => l.gate(s) });
    const create = errOf(createVm(d, { image: "deb-1", name: "a" }));
    await l.arrived;
    const stop = d.ops.begin("b", "stop");
    const drained = d.ops.drain(2_000);
    l.open();
    expect(await create).toMatchObject({ code: "CANCELLED", message: expect.stringMatching(/shutting down/) });
    setTimeout(() => stop.release(), 20);
    expect(await drained).toEqual([]);
    expect(store.listVms()).toEqual([]);
    expect(held.procs.size + held.taps.size).toBe(0);
    await expect(createVm(d, { image: "deb-1", name: "c" })).rejects.toMatchObject({ code: "CANCELLED" });
  });

  it("a deadline cancels with TIMEOUT", async () => {
    const ops = new VmOps();
    const t = ops.begin("a", "create", { deadlineMs: 10 });
    await new Promise((r) => setTimeout(r, 30));
    expect(t.signal.aborted).toBe(true);
    expect(t.signal.reason).toMatchObject({ code: "TIMEOUT" });
    t.release();
    expect(ops.current("a")).toBeUndefined();
  });
});
