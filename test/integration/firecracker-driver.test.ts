import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FirecrackerVmm, firecrackerPaths } from "../../src/adapters/firecracker/driver.js";
import { processAlive } from "../../src/adapters/exec/proc.js";
import { BangerError } from "../../src/domain/errors.js";
import type { VmmHandle, VmmSpec } from "../../src/ports/vmm.js";
import { FAKE_FC, FAKE_FC_ENV, fakeFcBin, readCalls, scratch } from "../fakes/firecracker/testkit.js";

const log = { info() {}, warn() {}, error() {}, debug() {} };

async function caught(p: Promise<unknown>): Promise<BangerError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BangerError);
    return e as BangerError;
  }
  throw new Error("expected a BangerError");
}

describe(`FirecrackerVmm against the fake firecracker${FAKE_FC_ENV.FAKE_FC_SPEC ? " (spec-less mode)" : ""}`, () => {
  let tmp: ReturnType<typeof scratch>;
  let spec: VmmSpec;
  let vmm: FirecrackerVmm;
  const handles: VmmHandle[] = [];

  beforeEach(() => {
    tmp = scratch("fcdrv-");
    spec = {
      vmId: "01J9ZQ7X_drv",
      name: "alpha",
      dir: join(tmp.dir, "vm"),
      kernel: tmp.file("vmlinux"),
      initrd: tmp.file("initrd.img"),
      bootArgs: "console=ttyS0 reboot=k panic=1 root=/dev/vda",
      rootfs: tmp.file("rootfs.ext4"),
      workDisk: tmp.file("work.ext4"),
      vcpus: 2,
      memoryMib: 256,
      tap: "tap-banger9",
      mac: "02:fc:00:00:00:09",
      vsockCid: 9,
    };
    vmm = new FirecrackerVmm({ bin: fakeFcBin(tmp.dir, FAKE_FC_ENV), log });
  });

  afterEach(async () => {
    for (const h of handles.splice(0)) await vmm.kill(h).catch(() => undefined);
    tmp.cleanup();
  });

  async function spawned(): Promise<VmmHandle> {
    const h = await vmm.spawn(spec);
    handles.push(h);
    return h;
  }

  const callsOf = (h: VmmHandle) => readCalls(`${h.controlSocket}.calls.jsonl`);
  async function waitForConsole(h: VmmHandle, text: string): Promise<void> {
    for (let i = 0; i < 100 && !readFileSync(h.consoleLog, "utf8").includes(text); i++) await sleep(50);
    expect(readFileSync(h.consoleLog, "utf8")).toContain(text);
  }

  it("spawns, configures, starts and stops a VM with the exact API sequence", async () => {
    const h = await spawned();
    expect(h).toMatchObject({ kind: "firecracker", controlSocket: join(spec.dir, "fc.sock"), consoleLog: join(spec.dir, "console.log") });
    expect(vmm.isAlive(h)).toBe(true);

    await vmm.configure(h, spec);
    await vmm.start(h);
    expect((await vmm.stop(h, { timeoutMs: 5_000 })).how).toBe("vmm-request");

    expect(vmm.isAlive(h)).toBe(false);
    expect(processAlive(h.pid)).toBe(false);

    const calls = callsOf(h);
    expect(calls.every((c) => c.status < 300)).toBe(true);
    // GET / is the readiness probe and the post-start state check; it may repeat while the socket comes up.
    const mutations = calls.filter((c) => c.method !== "GET");
    expect(mutations.map((c) => `${c.method} ${c.path}`)).toEqual([
      "PUT /logger",
      "PUT /machine-config",
      "PUT /boot-source",
      "PUT /drives/rootfs",
      "PUT /drives/work",
      "PUT /network-interfaces/eth0",
      "PUT /vsock",
      "PUT /actions",
      "PUT /actions",
    ]);
    const body = (path: string, i = 0) => mutations.filter((c) => c.path === path)[i].body;
    expect(body("/machine-config")).toEqual({ vcpu_count: 2, mem_size_mib: 256, smt: false });
    expect(body("/boot-source")).toEqual({ kernel_image_path: spec.kernel, initrd_path: spec.initrd, boot_args: `${spec.bootArgs} pci=off` });
    expect(body("/drives/rootfs")).toEqual({ drive_id: "rootfs", path_on_host: spec.rootfs, is_root_device: true, is_read_only: false });
    expect(body("/drives/work")).toEqual({ drive_id: "work", path_on_host: spec.workDisk, is_root_device: false, is_read_only: false });
    expect(body("/network-interfaces/eth0")).toEqual({ iface_id: "eth0", host_dev_name: spec.tap, guest_mac: spec.mac });
    expect(body("/vsock")).toEqual({ guest_cid: 9, uds_path: join(spec.dir, "vsock.sock") });
    expect(body("/actions", 0)).toEqual({ action_type: "InstanceStart" });
    expect(body("/actions", 1)).toEqual({ action_type: "SendCtrlAltDel" });

    // The VMM's stdout is the serial console and lands in console.log, with the sanitised --id.
    const consoleText = readFileSync(h.consoleLog, "utf8");
    expect(consoleText).toContain("id=01J9ZQ7X-drv");
    expect(consoleText).toContain("InstanceStart: 2 vCPU, 256 MiB");
    expect(existsSync(h.controlSocket)).toBe(false);
    expect(existsSync(join(spec.dir, "vsock.sock"))).toBe(false);
  });

  it("replaces a stale API socket and vsock socket left by a previous run", async () => {
    const first = await spawned();
    await vmm.configure(first, spec);
    await vmm.kill(first);
    // Leave stale files where a crashed VMM would.
    writeFileSync(join(spec.dir, "fc.sock"), "");
    writeFileSync(join(spec.dir, "vsock.sock"), "");
    const h = await spawned();
    await vmm.configure(h, spec);
    await vmm.start(h);
    expect(vmm.isAlive(h)).toBe(true);
  });

  it("surfaces Firecracker's fault_message in the BangerError", async () => {
    const h = await spawned();
    const err = await caught(vmm.configure(h, { ...spec, kernel: join(tmp.dir, "no-such-kernel") }));
    expect(err.code).toBe("VMM_FAILED");
    expect(err.message).toContain("firecracker rejected PUT /boot-source");
    expect(err.message).toContain("The kernel file cannot be opened");
    expect(err.message).toContain("no-such-kernel");
    expect(err.hint).toBeTruthy();
    // Nothing after the failing request was sent.
    expect(
      callsOf(h)
        .filter((c) => c.method !== "GET")
        .map((c) => c.path),
    ).toEqual(["/logger", "/machine-config", "/boot-source"]);
  });

  it("stop() on a VM that never started terminates it without waiting for a guest", async () => {
    const h = await spawned();
    expect((await vmm.stop(h, { timeoutMs: 60_000 })).how).toBe("sigterm");
    expect(processAlive(h.pid)).toBe(false);
  });

  it("asks the guest to reboot in its stop command, since a halted guest keeps Firecracker running", () => {
    expect(vmm.guestStopCommand).toBe("reboot");
  });

  describe("stop() and the guest's power state", () => {
    async function running(env: Record<string, string> = {}): Promise<{ vmm: FirecrackerVmm; h: VmmHandle }> {
      const withEnv = new FirecrackerVmm({ bin: fakeFcBin(tmp.dir, { ...FAKE_FC_ENV, ...env }, "firecracker-env"), log });
      const h = await withEnv.spawn(spec);
      handles.push(h);
      await withEnv.configure(h, spec);
      await withEnv.start(h);
      return { vmm: withEnv, h };
    }
    const ctrlAltDels = (h: VmmHandle) =>
      callsOf(h).filter((c) => c.path === "/actions" && (c.body as { action_type: string }).action_type === "SendCtrlAltDel");

    it("a guest that maps Ctrl-Alt-Del to a reboot ends the process: vmm-request", async () => {
      const { vmm: v, h } = await running({ FAKE_FC_CTRL_ALT_DEL: "reboot" });
      expect((await v.stop(h, { timeoutMs: 10_000 })).how).toBe("vmm-request");
      expect(processAlive(h.pid)).toBe(false);
      expect(readFileSync(h.consoleLog, "utf8")).toContain("reboot: Restarting system");
    });

    it("a guest that maps Ctrl-Alt-Del to a power-off halts and keeps the process: sigterm at the deadline", async () => {
      const { vmm: v, h } = await running({ FAKE_FC_CTRL_ALT_DEL: "poweroff" });
      expect((await v.stop(h, { timeoutMs: 1_500 })).how).toBe("sigterm");
      expect(processAlive(h.pid)).toBe(false);
      expect(ctrlAltDels(h).map((c) => c.status)).toEqual([204]);
    });

    it("a guest halted by an in-guest poweroff ignores Ctrl-Alt-Del: sigterm", async () => {
      const { vmm: v, h } = await running();
      process.kill(h.pid, "SIGUSR1");
      await waitForConsole(h, "reboot: Power down");
      expect(v.isAlive(h)).toBe(true);
      expect((await v.stop(h, { timeoutMs: 1_500 })).how).toBe("sigterm");
      expect(readFileSync(h.consoleLog, "utf8")).toContain("Ctrl-Alt-Del ignored: the guest is halted");
    });

    it("a guest that reboots on its own within graceMs: guest, and no Ctrl-Alt-Del is sent", async () => {
      const { vmm: v, h } = await running({ FAKE_FC_CTRL_ALT_DEL: "ignore" });
      process.kill(h.pid, "SIGUSR2");
      const r = await v.stop(h, { timeoutMs: 10_000, graceMs: 5_000 });
      expect(["guest", "already-gone"]).toContain(r.how);
      expect(ctrlAltDels(h)).toEqual([]);
    });

    it("a process that is already gone: already-gone", async () => {
      const { vmm: v, h } = await running();
      await v.kill(h);
      expect(await v.stop(h, { timeoutMs: 1_000 })).toMatchObject({ how: "already-gone" });
    });
  });

  it("kill() SIGKILLs the VMM and is safe to repeat", async () => {
    const h = await spawned();
    await vmm.kill(h);
    expect(processAlive(h.pid)).toBe(false);
    await vmm.kill(h);
  });

  it("reports the binary's path and version", async () => {
    expect(await vmm.version()).toMatch(/^\/\S+: Firecracker v1\.16\.1 \(fake\)$/);
  });

  it("fails spawn with VMM_FAILED and the console tail when the VMM exits at once", async () => {
    const wrapper = join(tmp.dir, "broken-firecracker");
    writeFileSync(wrapper, `#!/bin/sh\nFAKE_FC_SPEC=/nonexistent/spec.yaml exec "${process.execPath}" "${FAKE_FC}" "$@"\n`);
    chmodSync(wrapper, 0o755);
    const broken = new FirecrackerVmm({ bin: wrapper, log });
    const err = await caught(broken.spawn(spec));
    expect(err.code).toBe("VMM_FAILED");
    expect(err.message).toContain("exited with code 2");
    expect(err.message).toContain("API spec not found");
  });

  it("keeps the per-VM files in the VM directory", () => {
    expect(firecrackerPaths("/v")).toEqual({
      apiSocket: "/v/fc.sock",
      vsockSocket: "/v/vsock.sock",
      consoleLog: "/v/console.log",
      vmmLog: "/v/firecracker.log",
    });
  });
});

describe("FirecrackerVmm without a binary", () => {
  it("spawn fails with VMM_NOT_FOUND and version() says why", async () => {
    const tmp = scratch("fcnobin-");
    try {
      const vmm = new FirecrackerVmm({ bin: join(tmp.dir, "missing-firecracker"), log });
      const spec = { vmId: "x", name: "x", dir: join(tmp.dir, "vm") } as VmmSpec;
      const err = await caught(vmm.spawn(spec));
      expect(err.code).toBe("VMM_NOT_FOUND");
      expect(err.hint).toContain("firecracker_bin");
      expect(await caught(vmm.version())).toMatchObject({ code: "VMM_NOT_FOUND", message: expect.stringMatching(/missing-firecracker/) });
      expect(existsSync(spec.dir)).toBe(false);
    } finally {
      tmp.cleanup();
    }
  });
});
