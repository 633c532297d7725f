import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { probeAccel, qemuKvmWorks } from "../../src/adapters/qemu/accel.js";
import { QemuVmm } from "../../src/adapters/qemu/driver.js";
import { processAlive, waitForExit } from "../../src/adapters/exec/proc.js";
import { BangerError } from "../../src/domain/errors.js";
import type { VmmHandle, VmmSpec } from "../../src/ports/vmm.js";
import { busyboxInitramfs } from "../helpers/artifacts.js";

const QEMU = "qemu-system-x86_64";
const ROOT = resolve(__dirname, "../..");
const KERNEL_SCRIPT = join(ROOT, "images/debian/kernel.sh");
const CACHED_KERNEL = join(ROOT, "build/cache/kernel/vmlinux");

function have(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const haveQemu = have(QEMU);
const kernelSource = process.env.BANGER_TEST_KERNEL ?? (existsSync(CACHED_KERNEL) ? CACHED_KERNEL : existsSync(KERNEL_SCRIPT) ? "script" : undefined);
const isRoot = process.getuid?.() === 0;
const log = pino({ level: "silent" });

const qemuSkip = haveQemu ? "" : ` (skipped: ${QEMU} not installed)`;
const bootSkip =
  qemuSkip || (kernelSource ? "" : " (skipped: no kernel: set BANGER_TEST_KERNEL, or build build/cache/kernel/vmlinux with images/debian/kernel.sh)");

describe.skipIf(!haveQemu)(`qemu basics${qemuSkip}`, () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "banger-qemu-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("version() reports the binary's path and the first line of --version, and throws when it cannot run", async () => {
    expect(await new QemuVmm({ bin: QEMU, accel: "tcg", stateDir: dir, log }).version()).toMatch(/^\/\S+: QEMU emulator version \d+\.\d+/);
    const e = await new QemuVmm({ bin: "/nonexistent/qemu", accel: "tcg", stateDir: dir, log }).version().catch((err: unknown) => err);
    expect(e).toMatchObject({ code: "VMM_NOT_FOUND", message: expect.stringMatching(/nonexistent\/qemu/) });
  });

  it("probeAccel gives a verdict with a reason and caches it keyed by qemu version and kernel", async () => {
    const stateDir = join(dir, "state");
    const v = await probeAccel(QEMU, stateDir);
    expect(["kvm", "tcg"]).toContain(v.accel);
    expect(v.reason.length).toBeGreaterThan(10);
    if (existsSync("/sys/module/kvm_pvm") && !/\b(vmx|svm)\b/.test(readFileSync("/proc/cpuinfo", "utf8"))) {
      expect(v).toEqual({ accel: "tcg", reason: expect.stringMatching(/kvm_pvm/) });
    }
    const cache = JSON.parse(await readFile(join(stateDir, "accel.json"), "utf8")) as { key: string; accel: string };
    expect(cache.key).toContain("QEMU emulator version");
    expect(cache.accel).toBe(v.accel);
    // A cached entry with the same key is trusted as is; a stale key is probed again.
    await writeFile(join(stateDir, "accel.json"), JSON.stringify({ ...cache, reason: "from cache" }));
    expect((await probeAccel(QEMU, stateDir)).reason).toBe("from cache");
    await writeFile(join(stateDir, "accel.json"), JSON.stringify({ ...cache, key: "QEMU 0.1|old", reason: "stale" }));
    expect((await probeAccel(QEMU, stateDir)).reason).not.toBe("stale");
  });

  it("qemuKvmWorks runs a paused qemu through the shared spawn helper and leaves no process or temp dir", async () => {
    const before = readdirSync(tmpdir()).filter((n) => n.startsWith("banger-accel-")).length;
    const v = await qemuKvmWorks(QEMU);
    expect(["kvm", "tcg"]).toContain(v.accel);
    if (v.accel === "tcg") expect(v.reason).toMatch(/using TCG$/);
    expect(await qemuKvmWorks("/nonexistent/qemu")).toEqual({
      accel: "tcg",
      reason: expect.stringMatching(/cannot start with -accel kvm: .*ENOENT; using TCG/),
    });
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith("banger-accel-")).length).toBeLessThanOrEqual(before);
    const probes = readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("banger-accel-");
        } catch {
          return false;
        }
      });
    expect(probes).toEqual([]);
  });

  it("forced accel skips the probe and says so", async () => {
    const vmm = new QemuVmm({ bin: QEMU, accel: "tcg", stateDir: join(dir, "forced"), log });
    expect(await vmm.accelVerdict()).toEqual({ accel: "tcg", reason: expect.stringMatching(/forced/) });
    expect(existsSync(join(dir, "forced", "accel.json"))).toBe(false);
  });

  it("spawn with a kernel that does not exist fails with VMM_FAILED and the vmm.log tail, leaving no process", async () => {
    const vmm = new QemuVmm({ bin: QEMU, accel: "tcg", stateDir: dir, log });
    const vmDir = join(dir, "bad");
    await mkdir(vmDir);
    await writeFile(join(vmDir, "rootfs.ext4"), Buffer.alloc(1 << 20));
    await writeFile(join(vmDir, "work.ext4"), Buffer.alloc(1 << 20));
    const spec: VmmSpec = {
      vmId: "bad",
      name: "bad",
      dir: vmDir,
      kernel: join(dir, "no-such-vmlinux"),
      bootArgs: "console=ttyS0",
      rootfs: join(vmDir, "rootfs.ext4"),
      workDisk: join(vmDir, "work.ext4"),
      vcpus: 1,
      memoryMib: 128,
      tap: "",
      mac: "02:fc:00:00:00:09",
      vsockCid: 3,
    };
    const e = await vmm.spawn(spec).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(BangerError);
    expect((e as BangerError).code).toBe("VMM_FAILED");
    expect((e as BangerError).message).toMatch(/vmm\.log: .*no-such-vmlinux/);
    expect((e as BangerError).hint).toMatch(/vmm\.log/);
  });

  it("spawn with a missing qemu binary is VMM_NOT_FOUND", async () => {
    const vmm = new QemuVmm({ bin: "/nonexistent/qemu-system-x86_64", accel: "tcg", stateDir: dir, log });
    const e = await vmm
      .spawn({
        vmId: "x",
        name: "x",
        dir: join(dir, "nobin"),
        kernel: "/k",
        bootArgs: "",
        rootfs: "/r",
        workDisk: "/w",
        vcpus: 1,
        memoryMib: 128,
        tap: "",
        mac: "02:00:00:00:00:01",
        vsockCid: 3,
      })
      .catch((err: unknown) => err);
    expect((e as BangerError).code).toBe("VMM_NOT_FOUND");
  });
});

describe.skipIf(bootSkip !== "")(`QemuVmm boots a real kernel (TCG)${bootSkip}`, () => {
  let dir: string;
  let kernel: string;
  let ns: string | undefined;
  const handles: VmmHandle[] = [];
  // Networking needs root for the netns; without it the guest runs with no NIC (spec.tap = "").
  const useNetns = isRoot && have("ip");
  let vmm: QemuVmm;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "banger-qemu-boot-"));
    if (kernelSource === "script") {
      const out = join(ROOT, "build/cache/kernel");
      execFileSync("bash", [KERNEL_SCRIPT, out], { stdio: "ignore", timeout: 280_000 });
      kernel = join(out, "vmlinux");
    } else {
      kernel = kernelSource!;
    }
    if (useNetns) {
      ns = `banger-t-${randomBytes(3).toString("hex")}`;
      execFileSync("ip", ["netns", "add", ns], { timeout: 10_000 });
      for (const tap of ["tap0", "tap1", "tap2", "tap3"]) {
        execFileSync("ip", ["-n", ns, "tuntap", "add", "dev", tap, "mode", "tap"], { timeout: 10_000 });
        execFileSync("ip", ["-n", ns, "link", "set", tap, "up"], { timeout: 10_000 });
      }
    }
    vmm = new QemuVmm({ bin: QEMU, accel: "tcg", stateDir: dir, log, wrap: ns ? ["ip", "netns", "exec", ns] : undefined });
  });

  afterAll(async () => {
    for (const h of handles) await vmm?.kill(h).catch(() => undefined);
    if (ns) execFileSync("ip", ["netns", "del", ns], { timeout: 10_000 });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let seq = 0;
  async function makeSpec(bootArgs: string, initrd?: string): Promise<VmmSpec> {
    const n = seq++;
    const vmDir = join(dir, `vm${n}`);
    await mkdir(vmDir);
    const rootfs = join(vmDir, "rootfs.ext4");
    const work = join(vmDir, "work.ext4");
    // A dummy rootfs: without an initramfs the kernel cannot load virtio_blk and panics, which is the point.
    await writeFile(rootfs, Buffer.alloc(4 << 20));
    await writeFile(work, Buffer.alloc(4 << 20));
    return {
      vmId: `vm${n}`,
      name: `vm${n}`,
      dir: vmDir,
      kernel,
      initrd,
      bootArgs,
      rootfs,
      workDisk: work,
      vcpus: 1,
      memoryMib: 256,
      tap: useNetns ? `tap${n}` : "",
      mac: `02:fc:00:00:00:0${n}`,
      vsockCid: 3 + n,
    };
  }

  it("spawn → configure → start runs the kernel to its panic, and qemu exits by itself", async () => {
    const spec = await makeSpec("console=ttyS0 panic=1 reboot=k");
    const h = await vmm.spawn(spec);
    handles.push(h);
    expect(h).toMatchObject({ kind: "qemu", controlSocket: join(spec.dir, "qmp.sock"), consoleLog: join(spec.dir, "console.log") });
    expect(vmm.isAlive(h)).toBe(true);
    expect(existsSync(join(spec.dir, "vmm.log"))).toBe(true);

    await vmm.configure(h, spec);
    // configure really checks: a spec whose drive qemu does not have is refused.
    const wrong = await vmm.configure(h, { ...spec, workDisk: join(spec.dir, "other.ext4") }).catch((e: unknown) => e);
    expect((wrong as BangerError).code).toBe("VMM_FAILED");
    expect((wrong as BangerError).message).toMatch(/work drive/);

    await vmm.start(h);
    // Started means configure's precondition (paused) no longer holds.
    const late = await vmm.configure(h, spec).catch((e: unknown) => e);
    expect((late as BangerError).code).toBe("VMM_FAILED");

    expect(await waitForExit(h.pid, h.pidStart, 110_000)).toBe(true);
    expect(vmm.isAlive(h)).toBe(false);
    const console = await readFile(h.consoleLog, "utf8");
    expect(console).toMatch(/Linux version \d/);
    expect(console).toMatch(/Kernel panic/);
    // tsc_early_khz reached the guest's command line.
    expect(console).toMatch(/Command line: .*tsc_early_khz=\d+/);
  }, 130_000);

  it("stop() on a paused VM ends it cleanly", async () => {
    const spec = await makeSpec("console=ttyS0 panic=1");
    const h = await vmm.spawn(spec);
    handles.push(h);
    await vmm.configure(h, spec);
    // `quit`: the guest never ran, so the power button would reach no one.
    expect((await vmm.stop(h, { timeoutMs: 10_000 })).how).toBe("vmm-request");
    expect(vmm.isAlive(h)).toBe(false);
    expect(processAlive(h.pid)).toBe(false);
    // The guest never ran: nothing was printed.
    expect(await readFile(h.consoleLog, "utf8")).toBe("");
    expect((await vmm.stop(h, { timeoutMs: 1_000 })).how).toBe("already-gone");
  });

  it("stop() falls back to terminating a running guest that ignores the power button", async () => {
    const spec = await makeSpec("console=ttyS0 panic=0");
    const h = await vmm.spawn(spec);
    handles.push(h);
    await vmm.start(h);
    // Still booting, so nothing handles the power button before the deadline.
    expect((await vmm.stop(h, { timeoutMs: 500 })).how).toBe("sigterm");
    expect(processAlive(h.pid)).toBe(false);
  });

  it("a guest that runs its stop command (poweroff) ends qemu within graceMs: guest", async () => {
    expect(vmm.guestStopCommand).toBe("poweroff");
    const initrd = busyboxInitramfs(dir, "echo QEMU-GUEST-UP\nsleep 1\npoweroff -f\n");
    if (!initrd) return; // no busybox/cpio: nothing to boot
    const spec = await makeSpec("console=ttyS0 panic=1 reboot=k", initrd);
    const h = await vmm.spawn(spec);
    handles.push(h);
    await vmm.start(h);
    // As after running `poweroff` over SSH: the guest's own exit comes within graceMs, qemu is never asked.
    expect((await vmm.stop(h, { timeoutMs: 120_000, graceMs: 90_000 })).how).toBe("guest");
    expect(await readFile(h.consoleLog, "utf8")).toContain("QEMU-GUEST-UP");
  }, 180_000);

  it("kill() ends the process and is safe to repeat", async () => {
    const spec = await makeSpec("console=ttyS0 panic=0");
    const h = await vmm.spawn(spec);
    handles.push(h);
    await vmm.kill(h);
    expect(vmm.isAlive(h)).toBe(false);
    await vmm.kill(h);
    // A handle with the right pid but another start time is not ours.
    expect(vmm.isAlive({ ...h, pid: process.pid })).toBe(false);
  });
});
