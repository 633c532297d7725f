import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { groupGid, lookupVmmUser, type VmmUser } from "../../src/adapters/exec/privilege.js";
import { QemuVmm } from "../../src/adapters/qemu/driver.js";
import type { VmmHandle } from "../../src/ports/vmm.js";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { dropDeviceAcls, procStatus, systemUserSkipReason } from "../helpers/system-user.js";

const QEMU = "qemu-system-x86_64";
const have = (cmd: string) => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};
const skip =
  systemUserSkipReason() ??
  netnsSkipReason() ??
  built() ??
  (have(QEMU) ? undefined : `${QEMU} not installed`) ??
  (have("setfacl") ? undefined : "setfacl not installed (package acl): root-only device nodes cannot be granted");

interface Check {
  name: string;
  status: string;
  detail: string;
}

/**
 * Secure by default: a test daemon started as root with a vmm_user and an api_group that do not
 * exist creates both, grants the VMM user the device nodes (this host's are root-only), and a QEMU
 * started as that user on the host's real /dev/net/tun runs unprivileged.
 */
describe.skipIf(skip)(`bangerd sets up least privilege at start${skip ? ` (skipped: ${skip})` : ""}`, () => {
  const tag = randomBytes(3).toString("hex");
  const vmmName = `bgr-hv-${tag}`;
  const groupName = `bgr-hg-${tag}`;
  let d: TestDaemon;
  let art: string;
  let vmm: QemuVmm | undefined;
  let handle: VmmHandle | undefined;

  beforeAll(async () => {
    expect(lookupVmmUser(vmmName)).toBeUndefined();
    expect(groupGid(groupName)).toBeUndefined();
    d = await startTestDaemon({ config: { vmm_user: vmmName, api_group: groupName } });
    art = mkdtempSync(join(tmpdir(), "banger-hs-"));
  });

  afterAll(async () => {
    if (vmm && handle) await vmm.kill(handle).catch(() => undefined);
    await d?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
    // The daemon's accounts for this test only: its ACL entries first, while the name resolves.
    dropDeviceAcls(vmmName);
    if (lookupVmmUser(vmmName)) execFileSync("userdel", [vmmName], { timeout: 30_000 });
    for (const g of [vmmName, groupName]) if (groupGid(g) !== undefined) execFileSync("groupdel", [g], { timeout: 30_000 });
  });

  it("creates vmm_user (a system account without a shell) and api_group at start; the socket is 0660 root:<api_group>", () => {
    const user = lookupVmmUser(vmmName)!;
    expect(user).toBeDefined();
    expect(user.uid).toBeGreaterThan(0);
    const row = execFileSync("getent", ["passwd", vmmName], { timeout: 10_000 }).toString().trim().split(":");
    expect(row[6]).toBe("/usr/sbin/nologin");
    const gid = groupGid(groupName)!;
    expect(gid).toBeDefined();
    const sock = statSync(d.socket);
    expect(sock.gid).toBe(gid);
    expect(sock.mode & 0o777).toBe(0o660);
  });

  it("doctor shows PASS for vmm-user, vmm-tun and api-group", async () => {
    const r = await d.cli(["--json", "doctor"], { timeoutMs: 300_000 });
    const checks = Object.fromEntries(r.json<{ checks: Check[] }>().checks.map((c) => [c.name, c]));
    for (const n of ["vmm-user", "vmm-tun", "api-group"]) expect(checks[n]?.status, `${n}: ${checks[n]?.detail}`).toBe("PASS");
    expect(checks["vmm-user"].detail).toContain(vmmName);
    expect(checks["api-group"].detail).toContain(groupName);
  });

  it("a QEMU started as that user on the host's /dev/net/tun runs with its uid and no capabilities", async () => {
    const user: VmmUser = lookupVmmUser(vmmName)!;
    // What the TAP pool does with vmm_user set, in the daemon's own namespace: the TAP is the user's.
    execFileSync("ip", ["-n", d.ns.name, "tuntap", "add", "dev", "tap-hs", "mode", "tap", "user", String(user.uid)], { timeout: 10_000 });
    // Under the state dir the daemon made traversable, like a VM dir.
    const vmDir = join(d.stateDir, "vms", `hs-${tag}`);
    mkdirSync(vmDir);
    const kernel = join(art, "vmlinux");
    writeFileSync(kernel, Buffer.alloc(4096));
    execFileSync("chmod", ["0711", art], { timeout: 10_000 });
    const disk = (f: string) => (writeFileSync(join(vmDir, f), Buffer.alloc(4 << 20)), join(vmDir, f));
    const spec = {
      vmId: `hs-${tag}`,
      name: `hs-${tag}`,
      dir: vmDir,
      kernel,
      bootArgs: "console=ttyS0",
      rootfs: disk("rootfs.ext4"),
      workDisk: disk("work.ext4"),
      vcpus: 1,
      memoryMib: 128,
      tap: "tap-hs",
      mac: "02:fc:00:00:00:09",
      vsockCid: 9,
    };
    // No private 0666 /dev/net/tun here: the host's own node, opened through the daemon's grant.
    vmm = new QemuVmm({ bin: QEMU, accel: "tcg", stateDir: d.stateDir, log: pino({ level: "silent" }), wrap: ["ip", "netns", "exec", d.ns.name], user });
    handle = await vmm.spawn(spec);
    const st = procStatus(handle.pid);
    expect(st.uid).toEqual([user.uid, user.uid, user.uid, user.uid]);
    expect(st.capEff).toBe("0000000000000000");
    // Both drives opened read-write and the NIC is on the TAP (checked over QMP).
    await vmm.configure(handle, spec);
  });
});
