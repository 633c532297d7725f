import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withClient } from "../../src/adapters/firecracker/client.js";
import { FirecrackerVmm } from "../../src/adapters/firecracker/driver.js";
import { processAlive } from "../../src/adapters/exec/proc.js";
import type { VmmSpec } from "../../src/ports/vmm.js";
import { busyboxInitramfs } from "../helpers/artifacts.js";
import { createNetns, type Netns } from "../helpers/netns.js";
import { FAKE_FC_ENV, fakeFcBin, REPO_ROOT, scratch } from "../fakes/firecracker/testkit.js";

// FAKE_FC_BOOT=qemu: the fake boots a real kernel with QEMU. The guest is a busybox initramfs
// that prints a marker, then waits (Ctrl-Alt-Del: with no init to hand it to, the kernel restarts
// at once) or, with `fakefc.halt` on its command line, powers itself off.

const KERNEL = process.env.FAKE_FC_TEST_KERNEL || resolve(REPO_ROOT, "build/cache/kernel/vmlinux");
const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: "ignore", timeout: 10_000 }).status === 0;

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root for a network namespace and TAP";
  if (!existsSync(KERNEL)) return `no guest kernel at ${KERNEL} (build the image cache or set FAKE_FC_TEST_KERNEL)`;
  if (!existsSync(resolve(REPO_ROOT, "build/runtime/adapters/qemu/args.js"))) return "build/runtime is missing (run `npx tsc -p tsconfig.json`)";
  if (!has("qemu-system-x86_64", ["--version"])) return "qemu-system-x86_64 is not installed";
  if (!existsSync("/bin/busybox") || !has("cpio", ["--version"])) return "busybox-static or cpio is not installed";
  return undefined;
}
const reason = skipReason();

const INIT = `grep -q serio0 /proc/bus/input/devices 2>/dev/null && echo FAKEFC-KEYBOARD
echo FAKEFC-GUEST-UP
if grep -q fakefc.halt /proc/cmdline; then echo FAKEFC-HALTING; poweroff -f; fi
exec sleep 100000
`;

/** Processes whose command line mentions `needle` (our temp dir), i.e. qemu leaks. */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, "utf8").includes(needle)) pids.push(Number(d));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

async function waitFor(what: string, timeoutMs: number, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

describe.skipIf(reason !== undefined)(`fake firecracker real boot via QEMU${reason ? ` (skipped: ${reason})` : ""}`, () => {
  const log = { info() {}, warn() {}, error() {}, debug() {} };
  let tmp: ReturnType<typeof scratch>;
  let ns: Netns;
  let vmm: FirecrackerVmm;
  let initrd: string;

  beforeAll(async () => {
    tmp = scratch("fcboot-");
    initrd = busyboxInitramfs(tmp.dir, INIT)!;
    ns = await createNetns("fcboot");
    await ns.exec("ip", ["tuntap", "add", "dev", "tapfc0", "mode", "tap"]);
    const bin = fakeFcBin(tmp.dir, { ...FAKE_FC_ENV, FAKE_FC_BOOT: "qemu" }, "firecracker-qemu");
    // The TAP lives in the test namespace, so the VMM (and qemu under it) must too.
    vmm = new FirecrackerVmm({ bin, log, wrap: ["ip", "netns", "exec", ns.name] });
  });

  afterAll(async () => {
    for (const pid of tmp ? processesMentioning(tmp.dir) : []) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await ns?.destroy();
    tmp?.cleanup();
  });

  function specFor(name: string, extraArgs = ""): VmmSpec {
    return {
      vmId: name,
      name,
      dir: join(tmp.dir, name),
      kernel: KERNEL,
      initrd,
      bootArgs: `console=ttyS0 reboot=k panic=1${extraArgs}`,
      rootfs: tmp.file(`${name}-rootfs.ext4`),
      workDisk: tmp.file(`${name}-work.ext4`),
      vcpus: 1,
      memoryMib: 256,
      tap: "tapfc0",
      mac: "02:fc:00:00:00:0a",
      vsockCid: 10,
    };
  }

  it("boots the configured kernel; SendCtrlAltDel is a real key press, the guest resets and the process exits", async () => {
    const spec = specFor("vm-a");
    const h = await vmm.spawn(spec);
    await vmm.configure(h, spec);
    await vmm.start(h);
    const consoleText = () => readFileSync(h.consoleLog, "utf8");
    await waitFor("the guest marker on the console", 180_000, () => consoleText().includes("FAKEFC-GUEST-UP"));
    // The fake gives microvm the i8042 Firecracker has; the guest kernel found a keyboard on it.
    expect(consoleText()).toContain("FAKEFC-KEYBOARD");
    // PATCH /vm maps onto QMP stop/cont; snapshots are refused in this mode rather than faked.
    await withClient(h.controlSocket, 10_000, async (c) => {
      await c.send({ method: "PATCH", path: "/vm", body: { state: "Paused" } });
      expect((await c.get<{ state: string }>("/")).state).toBe("Paused");
      const refused = await c
        .send({ method: "PUT", path: "/snapshot/create", body: { snapshot_path: join(spec.dir, "s"), mem_file_path: join(spec.dir, "m") } })
        .catch((e: Error) => e);
      expect((refused as Error).message).toContain("[rule: fake-qemu-no-snapshot]");
      await c.send({ method: "PATCH", path: "/vm", body: { state: "Resumed" } });
      expect((await c.get<{ state: string }>("/")).state).toBe("Running");
    });
    expect((await vmm.stop(h, { timeoutMs: 120_000 })).how).toBe("vmm-request");
    expect(processAlive(h.pid)).toBe(false);
    expect(consoleText()).toContain("reboot: Restarting system");
    await waitFor("qemu to be gone", 10_000, () => processesMentioning(spec.dir).length === 0);
  });

  it("a guest that powers itself off leaves the process running, deaf to Ctrl-Alt-Del", async () => {
    const spec = specFor("vm-c", " fakefc.halt");
    const h = await vmm.spawn(spec);
    await vmm.configure(h, spec);
    await vmm.start(h);
    const consoleText = () => readFileSync(h.consoleLog, "utf8");
    await waitFor("the guest to power off", 180_000, () => consoleText().includes("the guest powered off"));
    expect(vmm.isAlive(h)).toBe(true);
    expect((await vmm.stop(h, { timeoutMs: 3_000 })).how).toBe("sigterm");
    expect(consoleText()).toContain("Ctrl-Alt-Del ignored: the guest is halted");
    await waitFor("qemu to be gone", 10_000, () => processesMentioning(spec.dir).length === 0);
  });

  it("kills qemu when the fake itself is SIGKILLed", async () => {
    const spec = specFor("vm-b");
    const h = await vmm.spawn(spec);
    await vmm.configure(h, spec);
    await vmm.start(h);
    await waitFor("qemu to run", 30_000, () => processesMentioning(spec.rootfs).some((p) => p !== h.pid));
    await vmm.kill(h);
    await waitFor("qemu to follow the fake", 10_000, () => processesMentioning(spec.rootfs).length === 0);
  });
});
