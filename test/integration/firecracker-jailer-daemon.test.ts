import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { createSystemUser, procStatus, systemUserSkipReason, type TestUser } from "../helpers/system-user.js";
import { FAKE_FC_ENV, fakeFcBin, fakeJailerBin, readJailerRecords } from "../fakes/firecracker/testkit.js";

const skip = netnsSkipReason() ?? systemUserSkipReason() ?? built();

/** bangerd as wired for production (config → wire → driver), with the fake jailer and the fake firecracker. */
describe.skipIf(skip)(`bangerd starts Firecracker VMs through the jailer${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let account: TestUser;
  let dir: string;
  let cgroupRoot: string;
  let d: TestDaemon;

  beforeAll(async () => {
    account = createSystemUser("bgr-jd", ["kvm"]);
    dir = mkdtempSync(join(tmpdir(), "banger-jd-"));
    // The fake cannot pivot_root: its firecracker walks the real path into the jail, so the state dir's parent must be traversable.
    chmodSync(dir, 0o711);
    cgroupRoot = join(dir, "cgroup");
    mkdirSync(cgroupRoot);
    d = await startTestDaemon({
      dir,
      config: {
        vmm: "firecracker",
        firecracker_bin: fakeFcBin(dir, FAKE_FC_ENV),
        jailer_bin: fakeJailerBin(dir, cgroupRoot),
        vmm_user: account.name,
        tap_pool_size: 1,
        vcpus: 2,
      },
      env: { BANGER_CGROUP_ROOT: cgroupRoot },
    });
    const art = join(dir, "art");
    mkdirSync(art);
    const reg = await d.cli(fakeImageArgs(art, "fake-1"));
    expect(reg.code, reg.stderr).toBe(0);
  });

  afterAll(async () => {
    await d?.cli(["vm", "rm", "jx", "--force"], { timeoutMs: 60_000 });
    await d?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    account?.remove();
  });

  it("create: a non-root VMM in its jail with its cgroup limits; doctor says jailer PASS; rm removes jail and cgroup", async () => {
    const r = await d.cli(["vm", "create", "--image", "fake-1", "--name", "jx", "--no-wait"], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const show = await d.cli(["--json", "vm", "show", "jx"]);
    const vm = show.json<{ vm: { id: string; pid: number; state: string } }>().vm;
    expect(vm.state).toBe("running");
    const uid = procStatus(vm.pid).uid;
    expect(account.uid).toBeGreaterThan(0);
    expect(uid).toEqual([account.uid, account.uid, account.uid, account.uid]);

    const jailDir = join(d.stateDir, "jail", "firecracker-fake", vm.id);
    expect(existsSync(join(jailDir, "root", "fc.sock"))).toBe(true);
    const rec = readJailerRecords(cgroupRoot).find((x) => x.id === vm.id);
    expect(rec).toMatchObject({ uid: account.uid, gid: account.gid, chrootDir: join(jailDir, "root") });
    // testConfig's memory_mib is 512.
    expect(rec?.settings).toEqual({ "cpu.max": "200000 100000", "memory.max": String((512 + 128) * 1024 * 1024) });
    expect(existsSync(rec!.cgroupDir!)).toBe(true);

    const doctor = await d.cli(["doctor"]);
    // One line per check: "<STATUS>  <name> <detail>".
    expect(doctor.stdout).toMatch(/^PASS\s+jailer\s+\S*jailer: each VM in its own chroot/m);

    const rm = await d.cli(["vm", "rm", "jx", "--force"], { timeoutMs: 60_000 });
    expect(rm.code, rm.stderr).toBe(0);
    expect(existsSync(jailDir)).toBe(false);
    expect(existsSync(rec!.cgroupDir!)).toBe(false);
  });
});
