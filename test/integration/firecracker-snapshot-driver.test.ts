import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FirecrackerVmm } from "../../src/adapters/firecracker/driver.js";
import { FirecrackerSnapshots, firecrackerSnapshotArtifacts } from "../../src/adapters/firecracker/snapshot.js";
import { BangerError } from "../../src/domain/errors.js";
import type { VmmHandle, VmmSpec } from "../../src/ports/vmm.js";
import { FAKE_FC_ENV, fakeFcBin, readCalls, scratch } from "../fakes/firecracker/testkit.js";

const log = { info() {}, warn() {}, error() {}, debug() {} };

async function caught(p: Promise<unknown>): Promise<BangerError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(BangerError);
  return e as BangerError;
}

// The driver's snapshot path against the strict fake, request by request: what it sends to the
// source process (pause, create) and to a fresh one (logger, load with overrides, repoint, resume).
describe(`FirecrackerSnapshots against the fake firecracker${FAKE_FC_ENV.FAKE_FC_SPEC ? " (spec-less mode)" : ""}`, () => {
  let tmp: ReturnType<typeof scratch>;
  let vmm: FirecrackerVmm;
  let snaps: FirecrackerSnapshots;
  let golden: VmmSpec;
  let snapDir: string;
  const handles: VmmHandle[] = [];

  beforeEach(() => {
    tmp = scratch("fcsnapdrv-");
    snapDir = join(tmp.dir, "snap");
    mkdirSync(snapDir);
    const art = firecrackerSnapshotArtifacts(snapDir);
    // The golden VM runs on the snapshot directory's disks: Firecracker records these paths.
    copyFileSync(tmp.file("seed-rootfs"), art.rootfs);
    copyFileSync(tmp.file("seed-work"), art.work);
    golden = {
      vmId: "golden_1",
      name: "golden",
      dir: join(tmp.dir, "golden"),
      kernel: tmp.file("vmlinux"),
      bootArgs: "console=ttyS0 reboot=k panic=1",
      rootfs: art.rootfs,
      workDisk: art.work,
      vcpus: 2,
      memoryMib: 64,
      tap: "tap-golden",
      mac: "02:fc:00:00:00:02",
      vsockCid: 3,
    };
    vmm = new FirecrackerVmm({ bin: fakeFcBin(tmp.dir, FAKE_FC_ENV), log });
    snaps = new FirecrackerSnapshots({ vmm, log });
  });

  afterEach(async () => {
    for (const h of handles.splice(0)) await vmm.kill(h).catch(() => undefined);
    tmp.cleanup();
  });

  async function bootGolden(): Promise<VmmHandle> {
    const h = await vmm.spawn(golden);
    handles.push(h);
    await vmm.configure(h, golden);
    await vmm.start(h);
    return h;
  }

  function cloneSpec(name: string): VmmSpec {
    const dir = join(tmp.dir, name);
    mkdirSync(dir, { recursive: true });
    const art = firecrackerSnapshotArtifacts(snapDir);
    copyFileSync(art.rootfs, join(dir, "rootfs.ext4"));
    copyFileSync(art.work, join(dir, "work.ext4"));
    return { ...golden, vmId: `${name}_id`, name, dir, rootfs: join(dir, "rootfs.ext4"), workDisk: join(dir, "work.ext4"), tap: `tap-${name}` };
  }

  const mutations = (h: VmmHandle) => readCalls(`${h.controlSocket}.calls.jsonl`).filter((c) => c.method !== "GET");

  it("snapshots a running VM (pause, create), restores it in a fresh process (logger, load, repoint) and resumes it", async () => {
    const src = await bootGolden();
    const before = mutations(src).length;
    const { artifacts, timing } = await snaps.snapshot(src, golden, snapDir);
    expect(artifacts).toEqual(firecrackerSnapshotArtifacts(snapDir));
    expect(timing.disksMs).toBe(0);
    expect(mutations(src).slice(before)).toEqual([
      { method: "PATCH", path: "/vm", body: { state: "Paused" }, status: 204, at: expect.any(String) },
      {
        method: "PUT",
        path: "/snapshot/create",
        body: { snapshot_type: "Full", snapshot_path: artifacts.state, mem_file_path: artifacts.memory },
        status: 204,
        at: expect.any(String),
      },
    ]);
    expect(statSync(artifacts.memory!).size).toBe(64 * 1024 * 1024);
    // Left paused: a golden source must not run on after its snapshot.
    await vmm.kill(src);

    const spec = cloneSpec("clone1");
    const h = await snaps.restore(spec, artifacts);
    handles.push(h);
    expect(h.controlSocket).toBe(join(spec.dir, "fc.sock"));
    const restoreCalls = mutations(h).map(({ method, path, body, status }) => ({ method, path, body, status }));
    expect(restoreCalls).toEqual([
      { method: "PUT", path: "/logger", body: { log_path: join(spec.dir, "firecracker.log"), level: "Warning", show_level: true }, status: 204 },
      {
        method: "PUT",
        path: "/snapshot/load",
        body: {
          snapshot_path: artifacts.state,
          mem_backend: { backend_type: "File", backend_path: artifacts.memory },
          network_overrides: [{ iface_id: "eth0", host_dev_name: "tap-clone1" }],
          vsock_override: { uds_path: join(spec.dir, "vsock.sock") },
          resume_vm: false,
        },
        status: 204,
      },
      { method: "PATCH", path: "/drives/rootfs", body: { drive_id: "rootfs", path_on_host: spec.rootfs }, status: 204 },
      { method: "PATCH", path: "/drives/work", body: { drive_id: "work", path_on_host: spec.workDisk }, status: 204 },
    ]);
    expect(readFileSync(h.consoleLog, "utf8")).toMatch(/restored from .*state\.snap \(taken from instance golden-1\); paused/);

    await snaps.resume(h);
    expect(mutations(h).at(-1)).toMatchObject({ method: "PATCH", path: "/vm", body: { state: "Resumed" }, status: 204 });
    // The fake's own view: the clone runs on its copies, its TAP and its socket.
    const { Client } = await import("undici");
    const c = new Client("http://localhost", { socketPath: h.controlSocket });
    try {
      const cfg = (await (await c.request({ method: "GET", path: "/vm/config" })).body.json()) as Record<string, any>;
      expect(cfg.drives.map((d: { path_on_host: string }) => d.path_on_host)).toEqual([spec.rootfs, spec.workDisk]);
      expect(cfg["network-interfaces"][0].host_dev_name).toBe("tap-clone1");
    } finally {
      await c.close();
    }
  });

  it("two clones restore from one snapshot side by side, each on its own TAP, socket and disks", async () => {
    const src = await bootGolden();
    const { artifacts } = await snaps.snapshot(src, golden, snapDir);
    await vmm.kill(src);
    const a = await snaps.restore(cloneSpec("ca"), artifacts);
    handles.push(a);
    const b = await snaps.restore(cloneSpec("cb"), artifacts);
    handles.push(b);
    await snaps.resume(a);
    await snaps.resume(b);
    expect(vmm.isAlive(a) && vmm.isAlive(b)).toBe(true);
    expect(existsSync(join(tmp.dir, "ca", "vsock.sock")) && existsSync(join(tmp.dir, "cb", "vsock.sock"))).toBe(true);
  });

  it("refuses a source whose disks are outside the snapshot directory, before pausing it", async () => {
    const h = await bootGolden();
    const e = await caught(snaps.snapshot(h, { ...golden, rootfs: tmp.file("elsewhere.ext4") }, snapDir));
    expect(e.code).toBe("BAD_REQUEST");
    expect(e.hint).toMatch(/drive paths recorded in the snapshot/);
    expect(mutations(h).filter((c) => c.path === "/vm")).toEqual([]);
  });

  it("refuses to restore onto the snapshot's own disks", async () => {
    const src = await bootGolden();
    const { artifacts } = await snaps.snapshot(src, golden, snapDir);
    await vmm.kill(src);
    const spec = { ...cloneSpec("same"), rootfs: artifacts.rootfs };
    expect((await caught(snaps.restore(spec, artifacts))).message).toMatch(/own copies/);
  });

  it("a load Firecracker refuses surfaces its fault and leaves no process", async () => {
    const src = await bootGolden();
    const { artifacts } = await snaps.snapshot(src, golden, snapDir);
    await vmm.kill(src);
    // A memory file of the right size that another snapshot wrote: the load starts, fails, and Firecracker ends itself.
    const foreignMem = join(tmp.dir, "foreign.snap");
    copyFileSync(artifacts.memory!, foreignMem);
    const fd = openSync(foreignMem, "r+");
    writeSync(fd, "FAKE-FIRECRACKER-MEMORY v1 nonce=0000000000000000 id=other mem_size_mib=64\n", 0);
    closeSync(fd);
    const spec = cloneSpec("bad");
    const foreign = { ...artifacts, memory: foreignMem };
    const e = await caught(snaps.restore(spec, foreign));
    expect(e.code).toBe("VMM_FAILED");
    expect(e.message).toContain("firecracker rejected PUT /snapshot/load");
    expect(e.message).toMatch(/does not belong/);
    const pidFile = readCalls(join(spec.dir, "fc.sock.calls.jsonl")).map((c) => `${c.method} ${c.path} ${c.status}`);
    expect(pidFile.filter((l) => !l.startsWith("GET"))).toEqual(["PUT /logger 204", "PUT /snapshot/load 400"]);
    expect(existsSync(join(spec.dir, "fc.sock"))).toBe(false);
    const sock = join(spec.dir, "fc.sock");
    const left = readdirSync("/proc").filter((pid) => {
      try {
        return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(sock);
      } catch {
        return false;
      }
    });
    expect(left).toEqual([]);
  });
});
