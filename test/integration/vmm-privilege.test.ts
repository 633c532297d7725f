import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lookupVmmUser, type VmmUser } from "../../src/adapters/exec/privilege.js";
import { FirecrackerVmm } from "../../src/adapters/firecracker/driver.js";
import { SANDBOX_ARG } from "../../src/adapters/qemu/args.js";
import { QemuVmm } from "../../src/adapters/qemu/driver.js";
import type { Vmm, VmmHandle, VmmSpec } from "../../src/ports/vmm.js";
import { FAKE_FC_ENV, fakeFcBin } from "../fakes/firecracker/testkit.js";
import { createSystemUser, openTunWrap, procStatus, systemUserSkipReason, type TestUser } from "../helpers/system-user.js";

const QEMU = "qemu-system-x86_64";
const have = (cmd: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const skip = systemUserSkipReason() ?? (have(QEMU) && have("ip") ? undefined : `${QEMU} or ip not installed`);
const log = pino({ level: "silent" });

describe.skipIf(skip)(`VMMs run as the unprivileged vmm_user${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let account: TestUser;
  let user: VmmUser;
  let dir: string;
  let ns: string;
  let wrap: string[];
  const running: [Vmm, VmmHandle][] = [];

  beforeAll(() => {
    account = createSystemUser("bgr-vmm", ["kvm"]);
    user = lookupVmmUser(account.name)!;
    dir = mkdtempSync(join(tmpdir(), "banger-priv-"));
    // Like /var/lib/banger: traversable, so the VMM user reaches its own VM dir and the kernel.
    chmodSync(dir, 0o711);
    ns = `banger-p-${randomBytes(3).toString("hex")}`;
    wrap = [...openTunWrap(dir), "ip", "netns", "exec", ns];
    execFileSync("ip", ["netns", "add", ns], { timeout: 10_000 });
    // What the TAP pool does with vmm_user set: the device belongs to the VMM's uid.
    execFileSync("ip", ["-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap", "user", String(user.uid)], { timeout: 10_000 });
    // Another VMM's TAP. (A TAP with no owner at all may be opened by anyone who can open /dev/net/tun.)
    execFileSync("ip", ["-n", ns, "tuntap", "add", "dev", "tap1", "mode", "tap", "user", "65534"], { timeout: 10_000 });
  });

  afterAll(async () => {
    for (const [vmm, h] of running) await vmm.kill(h).catch(() => undefined);
    if (ns) execFileSync("ip", ["netns", "del", ns], { timeout: 10_000 });
    if (dir) rmSync(dir, { recursive: true, force: true });
    account?.remove();
  });

  function spec(name: string, tap: string): VmmSpec {
    const vmDir = join(dir, name);
    mkdirSync(vmDir);
    const file = (f: string, bytes: number) => {
      writeFileSync(join(vmDir, f), Buffer.alloc(bytes));
      return join(vmDir, f);
    };
    // Root-owned and 0644 like an image's kernel: the VMM user reads it, nothing more.
    const kernel = join(dir, "vmlinux");
    writeFileSync(kernel, Buffer.alloc(4096));
    return {
      vmId: name,
      name,
      dir: vmDir,
      kernel,
      bootArgs: "console=ttyS0",
      rootfs: file("rootfs.ext4", 4 << 20),
      workDisk: file("work.ext4", 4 << 20),
      vcpus: 1,
      memoryMib: 128,
      tap,
      mac: "02:fc:00:00:00:01",
      vsockCid: 3,
    };
  }

  function expectUnprivileged(pid: number): void {
    const st = procStatus(pid);
    expect(st.uid).toEqual([user.uid, user.uid, user.uid, user.uid]);
    expect(st.gid).toEqual([user.gid, user.gid, user.gid, user.gid]);
    expect(st.capEff).toBe("0000000000000000");
    expect(st.noNewPrivs).toBe("1");
  }

  it("qemu: non-zero uid, no capabilities, seccomp on, its own TAP and its own 0700 VM dir", async () => {
    const vmm = new QemuVmm({ bin: QEMU, accel: "tcg", stateDir: dir, log, wrap, user });
    expect(await vmm.sandboxSupported()).toBe(true);
    const s = spec("q0", "tap0");
    const h = await vmm.spawn(s);
    running.push([vmm, h]);
    expectUnprivileged(h.pid);
    expect(user.uid).toBeGreaterThan(0);
    // -sandbox on: seccomp mode 2 (filter).
    expect(procStatus(h.pid).seccomp).toBe("2");
    expect(
      execFileSync("cat", [`/proc/${h.pid}/cmdline`])
        .toString()
        .split("\0"),
    ).toContain(SANDBOX_ARG);
    for (const p of [s.dir, s.rootfs, s.workDisk, h.consoleLog]) expect(statSync(p).uid).toBe(user.uid);
    expect(statSync(s.dir).mode & 0o777).toBe(0o700);
    // configure checks over QMP that both drives opened read-write and the NIC is on the TAP.
    await vmm.configure(h, s);
  });

  it("qemu as that user cannot open a TAP it does not own", async () => {
    const vmm = new QemuVmm({ bin: QEMU, accel: "tcg", stateDir: dir, log, wrap, user });
    const err = await vmm.spawn(spec("q1", "tap1")).then(
      (h) => {
        // Not expected; but a started VMM is still ours to end.
        running.push([vmm, h]);
        return h;
      },
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "VMM_FAILED", message: expect.stringMatching(/tap1|Operation not permitted|could not configure/i) });
  });

  it("firecracker (the fake, no jailer): non-zero uid and no capabilities", async () => {
    const vmm = new FirecrackerVmm({ bin: fakeFcBin(dir, FAKE_FC_ENV), log, user });
    chmodSync(join(dir, "firecracker-fake"), 0o755);
    const s = spec("f0", "tap-x");
    const h = await vmm.spawn(s);
    running.push([vmm, h]);
    expectUnprivileged(h.pid);
    expect(statSync(s.dir).uid).toBe(user.uid);
  });
});
