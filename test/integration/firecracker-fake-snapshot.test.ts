import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HAVE_SPEC, NO_SPEC_REASON, readCalls, scratch, startFake, type RunningFake } from "../fakes/firecracker/testkit.js";

// The fake's snapshot rules (v1.16.1 spec + snapshot-support.md): create only while paused, load
// only on a fresh process, overrides validated against what the snapshot holds, a failed load ends
// the process. The driver tests rely on these being enforced.
describe.skipIf(!HAVE_SPEC)(`fake firecracker snapshots${HAVE_SPEC ? "" : ` (skipped: ${NO_SPEC_REASON})`}`, () => {
  let tmp: ReturnType<typeof scratch>;
  const fakes: RunningFake[] = [];
  let disks: { rootfs: string; work: string };

  beforeEach(() => {
    tmp = scratch("fcsnap-");
    disks = { rootfs: tmp.file("rootfs.ext4"), work: tmp.file("work.ext4") };
  });

  afterEach(async () => {
    for (const f of fakes.splice(0)) await f.stop();
    tmp.cleanup();
  });

  async function fake(sub: string, env: Record<string, string> = {}): Promise<RunningFake> {
    const dir = join(tmp.dir, sub);
    await import("node:fs/promises").then((fs) => fs.mkdir(dir, { recursive: true }));
    const f = await startFake(dir, { id: sub, env });
    fakes.push(f);
    return f;
  }

  async function ok(f: RunningFake, method: string, path: string, body?: unknown): Promise<void> {
    const r = await f.request(method, path, body);
    expect(r.status, `${method} ${path}: ${JSON.stringify(r.json)}`).toBe(204);
  }

  async function expectFault(f: RunningFake, method: string, path: string, body: unknown, rule: string): Promise<string> {
    const r = await f.request(method, path, body);
    expect(r.status).toBe(400);
    expect(r.json.fault_message).toContain(`[rule: ${rule}]`);
    return r.json.fault_message as string;
  }

  /** A booted modelled VM with two drives, one TAP-backed interface and a vsock. */
  async function booted(sub = "src"): Promise<RunningFake> {
    const f = await fake(sub);
    await ok(f, "PUT", "/machine-config", { vcpu_count: 2, mem_size_mib: 64 });
    await ok(f, "PUT", "/boot-source", { kernel_image_path: tmp.file("vmlinux") });
    await ok(f, "PUT", "/drives/rootfs", { drive_id: "rootfs", path_on_host: disks.rootfs, is_root_device: true, is_read_only: false });
    await ok(f, "PUT", "/drives/work", { drive_id: "work", path_on_host: disks.work, is_root_device: false, is_read_only: false });
    await ok(f, "PUT", "/network-interfaces/eth0", { iface_id: "eth0", host_dev_name: "tap-golden", guest_mac: "02:fc:00:00:00:02" });
    await ok(f, "PUT", "/vsock", { guest_cid: 3, uds_path: join(tmp.dir, sub, "v.sock") });
    await ok(f, "PUT", "/actions", { action_type: "InstanceStart" });
    return f;
  }

  async function snapshotOf(f: RunningFake): Promise<{ state: string; mem: string }> {
    const files = { state: join(tmp.dir, "state.snap"), mem: join(tmp.dir, "mem.snap") };
    await ok(f, "PATCH", "/vm", { state: "Paused" });
    await ok(f, "PUT", "/snapshot/create", { snapshot_type: "Full", snapshot_path: files.state, mem_file_path: files.mem });
    return files;
  }

  const loadBody = (s: { state: string; mem: string }, over: Record<string, unknown> = {}) => ({
    snapshot_path: s.state,
    mem_backend: { backend_type: "File", backend_path: s.mem },
    resume_vm: false,
    ...over,
  });

  it("pauses and snapshots only a booted VM, and only while it is paused", async () => {
    const f = await fake("pre");
    await expectFault(f, "PATCH", "/vm", { state: "Paused" }, "post-boot-only");
    await expectFault(f, "PUT", "/snapshot/create", { snapshot_path: join(tmp.dir, "s"), mem_file_path: join(tmp.dir, "m") }, "post-boot-only");
    await expectFault(f, "PATCH", "/vm", { state: "Sleeping" }, "schema");

    const vm = await booted();
    const paths = { snapshot_path: join(tmp.dir, "state.snap"), mem_file_path: join(tmp.dir, "mem.snap") };
    const msg = await expectFault(vm, "PUT", "/snapshot/create", paths, "create-needs-paused");
    expect(msg).toMatch(/not paused/);
    expect(existsSync(paths.snapshot_path)).toBe(false);

    await ok(vm, "PATCH", "/vm", { state: "Paused" });
    await ok(vm, "PATCH", "/vm", { state: "Paused" });
    expect((await vm.request("GET", "/")).json.state).toBe("Paused");
    await expectFault(vm, "PUT", "/snapshot/create", { snapshot_path: join(tmp.dir, "nodir", "s"), mem_file_path: paths.mem_file_path }, "snapshot-dir-exists");
    await ok(vm, "PUT", "/snapshot/create", paths);

    // Real files: the state holds the VM's configuration, the memory file is the guest's size.
    const state = readFileSync(paths.snapshot_path, "utf8");
    expect(state.split("\n")[0]).toBe("FAKE-FIRECRACKER-SNAPSHOT v1");
    const payload = JSON.parse(state.split("\n")[1]!) as Record<string, any>;
    expect(payload).toMatchObject({ vmm_version: "1.16.1", instance_id: "src", snapshot_type: "Full", "machine-config": { vcpu_count: 2, mem_size_mib: 64 } });
    expect(payload.drives.map((d: { path_on_host: string }) => d.path_on_host)).toEqual([disks.rootfs, disks.work]);
    expect(statSync(paths.mem_file_path).size).toBe(64 * 1024 * 1024);
    expect(readFileSync(paths.mem_file_path).subarray(0, 26).toString()).toBe("FAKE-FIRECRACKER-MEMORY v1");

    await ok(vm, "PATCH", "/vm", { state: "Resumed" });
    expect((await vm.request("GET", "/")).json.state).toBe("Running");
  });

  it("loads on a fresh process with overrides, stays paused, takes repointed drives, then resumes", async () => {
    const snap = await snapshotOf(await booted());
    const copies = { rootfs: tmp.file("clone-rootfs.ext4"), work: tmp.file("clone-work.ext4") };
    const f = await fake("clone");
    await ok(f, "PUT", "/logger", { log_path: tmp.file("fc.log", 0) });
    const vsockPath = join(tmp.dir, "clone", "clone-v.sock");
    await ok(
      f,
      "PUT",
      "/snapshot/load",
      loadBody(snap, { network_overrides: [{ iface_id: "eth0", host_dev_name: "tap-clone" }], vsock_override: { uds_path: vsockPath } }),
    );
    expect((await f.request("GET", "/")).json.state).toBe("Paused");
    const cfg = (await f.request("GET", "/vm/config")).json;
    expect(cfg["boot-source"]).toBeUndefined();
    expect(cfg["network-interfaces"]).toEqual([{ iface_id: "eth0", host_dev_name: "tap-clone", guest_mac: "02:fc:00:00:00:02" }]);
    expect(cfg.vsock).toEqual({ guest_cid: 3, uds_path: vsockPath });
    expect(statSync(vsockPath).isSocket()).toBe(true);

    await ok(f, "PATCH", "/drives/rootfs", { drive_id: "rootfs", path_on_host: copies.rootfs });
    await ok(f, "PATCH", "/drives/work", { drive_id: "work", path_on_host: copies.work });
    await expectFault(f, "PATCH", "/drives/scratch", { drive_id: "scratch", path_on_host: copies.work }, "drive-exists");
    await expectFault(f, "PATCH", "/drives/work", { drive_id: "work", path_on_host: join(tmp.dir, "gone.ext4") }, "host-file-exists");
    expect((await f.request("GET", "/vm/config")).json.drives.map((d: { path_on_host: string }) => d.path_on_host)).toEqual([copies.rootfs, copies.work]);

    // A restored VM counts as booted: boot configuration, a second load and InstanceStart are refused.
    await expectFault(f, "PUT", "/machine-config", { vcpu_count: 1, mem_size_mib: 64 }, "pre-boot-only");
    await expectFault(f, "PUT", "/snapshot/load", loadBody(snap), "pre-boot-only");
    await expectFault(f, "PUT", "/actions", { action_type: "InstanceStart" }, "start-once");

    await ok(f, "PATCH", "/vm", { state: "Resumed" });
    expect((await f.request("GET", "/")).json.state).toBe("Running");
    expect(f.output()).toContain("restored from");
    expect(readCalls(f.calls).map((c) => `${c.method} ${c.path} ${c.status}`)).toContain("PUT /snapshot/load 204");
  });

  it("refuses a load request that is malformed or comes after boot configuration, and lives on", async () => {
    const snap = await snapshotOf(await booted());
    const f = await fake("fresh");
    await expectFault(f, "PUT", "/snapshot/load", { snapshot_path: snap.state }, "mem-field-required");
    await expectFault(f, "PUT", "/snapshot/load", loadBody(snap, { mem_file_path: snap.mem }), "mem-fields-exclusive");
    await expectFault(f, "PUT", "/snapshot/load", loadBody(snap, { mem_backend: { backend_type: "Disk", backend_path: snap.mem } }), "schema");
    await expectFault(f, "PUT", "/snapshot/load", loadBody(snap, { huge_pages: "2M" }), "schema");
    await ok(f, "PUT", "/machine-config", { vcpu_count: 1, mem_size_mib: 64 });
    await expectFault(f, "PUT", "/snapshot/load", loadBody(snap), "load-needs-fresh-process");
    expect(f.child.exitCode).toBeNull();
    expect((await f.request("GET", "/")).json.state).toBe("Not started");
  });

  it("accepts the deprecated mem_file_path, with a Deprecation header, and resume_vm: true runs the VM at once", async () => {
    const snap = await snapshotOf(await booted());
    const f = await fake("old");
    const r = await f.request("PUT", "/snapshot/load", {
      snapshot_path: snap.state,
      mem_file_path: snap.mem,
      resume_vm: true,
      vsock_override: { uds_path: join(tmp.dir, "old", "v.sock") },
    });
    expect(r.status).toBe(204);
    expect(r.headers.deprecation).toBe("true");
    expect((await f.request("GET", "/")).json.state).toBe("Running");
  });

  async function expectFatalLoad(body: unknown, rule: string, sub: string): Promise<string> {
    const f = await fake(sub);
    const msg = await expectFault(f, "PUT", "/snapshot/load", body, rule);
    // A load that started and failed ends the process: its state may be half restored.
    expect(await f.exited).toEqual({ code: 1, signal: null });
    return msg;
  }

  it("ends the process when the load fails: unknown iface, missing drive, foreign or corrupted files, another version", async () => {
    const snap = await snapshotOf(await booted());
    expect(
      await expectFatalLoad(loadBody(snap, { network_overrides: [{ iface_id: "eth1", host_dev_name: "tap-x" }] }), "network-override-iface", "f1"),
    ).toMatch(/eth1.*it has eth0/);
    await expectFatalLoad(loadBody(snap, { mem_backend: { backend_type: "File", backend_path: join(tmp.dir, "nope") } }), "mem-file", "f2");

    // A memory file from another snapshot of the same size does not pair with this state file.
    const other = { state: join(tmp.dir, "o.snap"), mem: join(tmp.dir, "o.mem") };
    const src2 = await booted("src2");
    await ok(src2, "PATCH", "/vm", { state: "Paused" });
    await ok(src2, "PUT", "/snapshot/create", { snapshot_path: other.state, mem_file_path: other.mem });
    expect(await expectFatalLoad(loadBody(snap, { mem_backend: { backend_type: "File", backend_path: other.mem } }), "mem-file", "f3")).toMatch(
      /does not belong/,
    );

    const text = readFileSync(snap.state, "utf8");
    writeFileSync(join(tmp.dir, "corrupt.snap"), text.replace('"vcpu_count":2', '"vcpu_count":3'));
    expect(await expectFatalLoad(loadBody(snap, { snapshot_path: join(tmp.dir, "corrupt.snap") }), "snapshot-file", "f4")).toMatch(/checksum/);

    const [magic, json] = text.split("\n");
    const older = json!.replace('"vmm_version":"1.16.1"', '"vmm_version":"1.15.0"');
    writeFileSync(join(tmp.dir, "old.snap"), `${magic}\n${older}\ncrc ${createHash("sha256").update(older).digest("hex")}\n`);
    expect(await expectFatalLoad(loadBody(snap, { snapshot_path: join(tmp.dir, "old.snap") }), "snapshot-version", "f5")).toMatch(/v1\.15\.0/);

    // The drives recorded in the snapshot must exist at load, even if they are repointed afterwards.
    await import("node:fs/promises").then((fs) => fs.rm(disks.work));
    expect(await expectFatalLoad(loadBody(snap), "snapshot-drive-exists", "f6")).toContain(disks.work);
  });

  it("hands a Uffd backend the guest memory layout over its socket", async () => {
    const snap = await snapshotOf(await booted());
    const uds = join(tmp.dir, "uffd.sock");
    let received = "";
    const server = createServer((c) => c.on("data", (d) => (received += d.toString())));
    await new Promise<void>((r) => server.listen(uds, r));
    try {
      const f = await fake("uffd");
      await ok(
        f,
        "PUT",
        "/snapshot/load",
        loadBody(snap, { mem_backend: { backend_type: "Uffd", backend_path: uds }, vsock_override: { uds_path: join(tmp.dir, "uffd", "v.sock") } }),
      );
      for (let i = 0; i < 50 && !received; i++) await new Promise((r) => setTimeout(r, 20));
      expect(JSON.parse(received)).toEqual([{ base_host_virt_addr: 0, size: 64 * 1024 * 1024, offset: 0, page_size: 4096 }]);
    } finally {
      server.close();
    }
    await expectFatalLoad(loadBody(snap, { mem_backend: { backend_type: "Uffd", backend_path: join(tmp.dir, "no-handler.sock") } }), "uffd-socket", "uffd2");
  });

  it("refuses a vsock_override for a snapshot without vsock, and a vsock path already taken (the source still runs)", async () => {
    const snap = await snapshotOf(await booted());
    expect(await expectFatalLoad(loadBody(snap), "vsock-uds-absent", "v1")).toMatch(/v\.sock already exists/);
    const novsock = await fake("nov");
    await ok(novsock, "PUT", "/machine-config", { vcpu_count: 1, mem_size_mib: 32 });
    await ok(novsock, "PUT", "/boot-source", { kernel_image_path: tmp.file("vmlinux") });
    await ok(novsock, "PUT", "/actions", { action_type: "InstanceStart" });
    const bare = { state: join(tmp.dir, "bare.snap"), mem: join(tmp.dir, "bare.mem") };
    await ok(novsock, "PATCH", "/vm", { state: "Paused" });
    await ok(novsock, "PUT", "/snapshot/create", { snapshot_path: bare.state, mem_file_path: bare.mem });
    await expectFatalLoad(loadBody(bare, { vsock_override: { uds_path: join(tmp.dir, "x.sock") } }), "vsock-override-device", "v2");
  });

  it("with FAKE_FC_BOOT=qemu refuses snapshot loads with a clear fault instead of pretending", async () => {
    const snap = await snapshotOf(await booted());
    const f = await fake("q", { FAKE_FC_BOOT: "qemu" });
    expect(await expectFault(f, "PUT", "/snapshot/load", loadBody(snap), "fake-qemu-no-snapshot")).toMatch(/QEMU driver's snapshots/);
    expect(f.child.exitCode).toBeNull();
  });
});
