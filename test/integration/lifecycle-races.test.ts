import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "../helpers/api.js";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { REPO, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";

const skip = netnsSkipReason() ?? built();

interface VmJson {
  id: string;
  name: string;
  ip: string;
  tap?: string;
  state: string;
  pid?: number;
  dir: string;
  vsockCid: number;
  lastError?: string;
}
interface EventJson {
  op: string;
  stage: string;
  outcome: string;
  opId?: number;
}

/** Processes whose command line names this VM's API socket: its VMMs. */
function vmmPids(dir: string): number[] {
  const sock = join(dir, "fc.sock");
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(sock);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * The real daemon (real SQLite, TAPs, nft, disks) with the fake firecracker
 * as the only fake; requests go straight to the socket so they really arrive
 * together. The fake runs no guest, so creates and starts use noWait unless a
 * test wants an operation parked in wait-ssh.
 */
describe.skipIf(skip)(`lifecycle under concurrency and interruption${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let art: string;
  let api: ReturnType<typeof apiClient>;
  const verify = () => runIn(d.ns, join(REPO, "verify.sh"), [], { env: { BANGER_CONFIG: d.configPath } });
  const vm = async (name: string) => (await api.call<{ vm: VmJson }>("GET", `/vms/${name}`)).body.vm;
  const create = (name: string, extra: Record<string, unknown> = {}) =>
    api.call<{ vm: VmJson }>("POST", "/vms", { image: "fake-1", name, noWait: true, ...extra });
  const created = async (name: string) => {
    const r = await create(name);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body.vm;
  };
  const tapExists = async (tap: string) => (await d.ns.exec("ip", ["link", "show", tap], { allowFailure: true })).code === 0;
  const daemonLog = () => readFileSync(join(d.stateDir, "bangerd.log"), "utf8");

  beforeAll(async () => {
    d = await startTestDaemon({ config: { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 4, ssh_timeout_s: 120 }, env: FAKE_FC_ENV });
    api = apiClient(d.socket);
    art = mkdtempSync(join(tmpdir(), "banger-race-"));
    const reg = await d.cli(fakeImageArgs(art, "fake-1"));
    expect(reg.stderr).toBe("");
  });
  afterAll(async () => {
    await api?.close();
    await d?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it.each([2, 5, 10])("%i concurrent starts of one stopped VM: one VMM, running, TAP present, the rest VM_BUSY", async (n) => {
    const name = `race-${n}`;
    await created(name);
    expect((await api.call("POST", `/vms/${name}/stop`, {})).status).toBe(200);
    const replies = await Promise.all(Array.from({ length: n }, () => api.call("POST", `/vms/${name}/start`, { noWait: true })));
    const ok = replies.filter((r) => r.status === 200);
    const busy = replies.filter((r) => r.status === 409 && r.body.error.code === "VM_BUSY");
    expect(ok).toHaveLength(1);
    expect(busy).toHaveLength(n - 1);
    for (const b of busy) expect(b.body.error.message).toMatch(/start in progress/);
    const v = await vm(name);
    expect(v.state).toBe("running");
    expect(vmmPids(v.dir)).toEqual([v.pid]);
    expect(await tapExists(v.tap!)).toBe(true);
    expect((await verify()).stdout).toMatch(/no leaks/);
  });

  it("rm --force during a start cancels the start, undoes it and removes the VM", async () => {
    await created("victim");
    await api.call("POST", "/vms/victim/stop", {});
    const dir = (await vm("victim")).dir;
    // Without noWait the start sits in wait-ssh: the fake boots no guest.
    const start = api.call("POST", "/vms/victim/start", {});
    for (let i = 0; i < 200; i++) {
      const ev = (await api.call<{ events: EventJson[] }>("GET", "/vms/victim/events")).body.events;
      if (ev.some((e) => e.op === "start" && e.stage === "start")) break;
      await sleep(50);
    }
    expect((await vm("victim")).state).toBe("starting");
    const rm = await api.call("DELETE", "/vms/victim?force=true");
    expect(rm.body).toEqual({ removed: "victim", cancelled: "start" });
    const s = await start;
    expect(s.status).toBe(409);
    expect(s.body.error).toMatchObject({ code: "CANCELLED", stage: "wait-ssh" });
    expect(vmmPids(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect((await api.call("GET", "/vms/victim")).status).toBe(404);
    expect((await verify()).stdout).toMatch(/no leaks/);
  });

  it("stop racing rm: the rm wins or waits, the VM is gone and nothing leaks", async () => {
    for (const order of ["stop-first", "rm-first"]) {
      const name = `sr-${order}`;
      await created(name);
      const dir = (await vm(name)).dir;
      const [a, b] =
        order === "stop-first"
          ? await Promise.all([api.call("POST", `/vms/${name}/stop`, {}), api.call("DELETE", `/vms/${name}?force=true`)])
          : (await Promise.all([api.call("DELETE", `/vms/${name}?force=true`), api.call("POST", `/vms/${name}/stop`, {})])).reverse();
      expect(b.status).toBe(200); // rm --force waits out a stop, it never fails because of one
      expect([200, 404, 409]).toContain(a.status);
      if (a.status === 409) expect(a.body.error.code).toBe("VM_BUSY");
      expect((await api.call("GET", `/vms/${name}`)).status).toBe(404);
      expect(vmmPids(dir)).toEqual([]);
    }
    expect((await verify()).stdout).toMatch(/no leaks/);
  });

  it("20 parallel creates while 20 other VMs are deleted: no name, IP, TAP or CID collision, no leak", async () => {
    const old = await Promise.all(Array.from({ length: 20 }, (_, i) => create(`old-${i}`)));
    expect(old.every((r) => r.status === 201)).toBe(true);
    const replies = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => create(`new-${i}`)),
      ...Array.from({ length: 20 }, (_, i) => api.call("DELETE", `/vms/old-${i}?force=true`)),
    ]);
    for (const r of replies) expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
    const live = (await api.call<{ vms: VmJson[] }>("GET", "/vms")).body.vms.filter((v) => v.name.startsWith("new-"));
    expect(live).toHaveLength(20);
    for (const key of ["name", "ip", "tap", "vsockCid", "pid"] as const) expect(new Set(live.map((v) => v[key])).size).toBe(20);
    for (const v of live) expect(v.state).toBe("running");
    expect((await verify()).stdout).toMatch(/no leaks/);
    await Promise.all(live.map((v) => api.call("DELETE", `/vms/${v.name}?force=true`)));
    expect((await verify()).stdout).toMatch(/no leaks/);
  });

  it("GETs hammered during stops and VMM exits release each TAP exactly once", async () => {
    const names = ["h-0", "h-1", "h-2", "h-3"];
    for (const n of names) await created(n);
    const before = await Promise.all(names.map(vm));
    let hammering = true;
    let gets = 0;
    const hammer = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (hammering) {
          await api.call("GET", "/vms");
          await api.call("GET", "/vms/h-3/events");
          gets++;
        }
      }),
    );
    // Two stopped by banger, one whose VMM dies under it (a crash, or an in-guest poweroff of a real FC).
    const stops = Promise.all(names.slice(0, 2).map((n) => api.call("POST", `/vms/${n}/stop`, {})));
    process.kill(before[2].pid!, "SIGKILL");
    expect((await stops).every((r) => r.status === 200)).toBe(true);
    for (let i = 0; i < 100 && (await vm("h-2")).state !== "stopped"; i++) await sleep(100);
    hammering = false;
    await hammer;
    expect(gets).toBeGreaterThan(20);
    for (const n of names.slice(0, 3)) {
      const v = await vm(n);
      expect(v.state).toBe("stopped");
      const ev = (await api.call<{ events: EventJson[] }>("GET", `/vms/${n}/events`)).body.events;
      expect(ev.filter((e) => e.stage === "release-net" && e.outcome === "ok")).toHaveLength(1);
    }
    expect((await vm("h-2")).lastError).toMatch(/outside banger/);
    expect(daemonLog()).not.toMatch(/may not release|tap release failed/);
    // Every TAP the stopped VMs held is either back in the pool once or deleted; the running one still has its own.
    const status = (await api.call<{ checks: { name: string; detail: string }[] }>("GET", "/doctor")).body;
    expect(status).toBeDefined();
    expect(await tapExists(before[3].tap!)).toBe(true);
    expect((await vm("h-3")).tap).toBe(before[3].tap);
    await Promise.all(names.map((n) => api.call("DELETE", `/vms/${n}?force=true`)));
    expect((await verify()).stdout).toMatch(/no leaks/);
  });

  it("SIGTERM to bangerd during a create: the create is undone before the daemon exits; nothing is half-made after the restart", async () => {
    const pending = api.call("POST", "/vms", { image: "fake-1", name: "midway" });
    for (let i = 0; i < 200; i++) {
      const ev = await api.call<{ events: EventJson[] }>("GET", "/vms/midway/events");
      if (ev.status === 200 && ev.body.events.some((e) => e.stage === "start")) break;
      await sleep(50);
    }
    const dir = (await vm("midway")).dir;
    const pid = Number(readFileSync(join(d.stateDir, "bangerd.lock"), "utf8").trim());
    process.kill(pid, "SIGTERM");
    const reply = await pending;
    expect(reply.status).toBe(409);
    expect(reply.body.error).toMatchObject({ code: "CANCELLED", message: expect.stringMatching(/shutting down/) });
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(100);
    expect(existsSync(dir)).toBe(false); // undone before exit, not by the next start's reconcile
    expect(vmmPids(dir)).toEqual([]);
    await api.close();
    await d.start();
    api = apiClient(d.socket);
    expect((await api.call("GET", "/vms/midway")).status).toBe(404);
    expect(daemonLog()).toMatch(/"vm":"midway","stage":"wait-ssh","op":"create".*"code":"CANCELLED"/);
    expect((await verify()).stdout).toMatch(/no leaks/);
  });
});
