import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ext4Disks } from "../../src/adapters/disk/disks.js";
import { ExecRunner } from "../../src/adapters/exec/runner.js";
import { QemuVmm } from "../../src/adapters/qemu/driver.js";
import { withQmp } from "../../src/adapters/qemu/qmp.js";
import { QemuSnapshots, qemuSnapshotArtifacts } from "../../src/adapters/qemu/snapshot.js";
import { generateHostKey, knownHostsLine } from "../../src/adapters/ssh/keys.js";
import { DEFAULT_BOOT_ARGS } from "../../src/app/images.js";
import type { SnapshotArtifacts } from "../../src/ports/snapshots.js";
import type { VmmHandle, VmmSpec } from "../../src/ports/vmm.js";
import { builtDebianImage, guestSkipReason } from "../helpers/guest-image.js";
import { createNetns, type Netns } from "../helpers/netns.js";

// One real Debian guest under QEMU/TCG: boot, SSH, snapshot (stop + migrate to a file + disk copies),
// kill, restore from the file onto copies of the disks, resume; SSH answers on the same IP and the
// guest is the same boot (boot_id, a file written before the snapshot). Re-identity is not tested
// here: that needs the guest channel. Restore-to-SSH time is printed, not asserted (bench/ measures).

function toolMissing(): string | undefined {
  for (const c of ["debugfs", "ssh", "ssh-keygen", "resize2fs"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${c}`], { stdio: "ignore" });
    } catch {
      return `${c} not installed`;
    }
  }
  return undefined;
}

const skip = guestSkipReason() ?? toolMissing();
const GUEST_IP = "172.31.251.2";
const GW_IP = "172.31.251.1";
const SSH_WAIT_MS = 600_000;
const log = pino({ level: "silent" });

describe.skipIf(skip)(`QEMU snapshot and restore of a real guest${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let dir: string;
  let vmm: QemuVmm;
  let snaps: QemuSnapshots;
  let sshArgs: string[];
  const handles: VmmHandle[] = [];
  const runner = new ExecRunner();
  const disks = new Ext4Disks({ runner });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "banger-qsnap-"));
    ns = await createNetns("qsnap");
    await ns.exec("ip", ["link", "add", "br0", "type", "bridge"]);
    await ns.exec("ip", ["addr", "add", `${GW_IP}/24`, "dev", "br0"]);
    await ns.exec("ip", ["link", "set", "br0", "up"]);
    for (const tap of ["tapgold", "tapclone"]) {
      await ns.exec("ip", ["tuntap", "add", "dev", tap, "mode", "tap"]);
      await ns.exec("ip", ["link", "set", tap, "master", "br0", "up"]);
    }
    vmm = new QemuVmm({ bin: "qemu-system-x86_64", accel: "tcg", stateDir: join(dir, "state"), log, wrap: ["ip", "netns", "exec", ns.name] });
    snaps = new QemuSnapshots({ vmm, log });
    const host = await generateHostKey(dir);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client")]);
    await writeFile(join(dir, "known_hosts"), `${knownHostsLine(GUEST_IP, host.publicKey)}\n`);
    sshArgs = [
      "-i",
      join(dir, "client"),
      "-o",
      `UserKnownHostsFile=${join(dir, "known_hosts")}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "BatchMode=yes",
      "-o",
      "ConnectTimeout=5",
      "-o",
      "LogLevel=ERROR",
      `root@${GUEST_IP}`,
    ];
    const img = builtDebianImage()!;
    await mkdir(join(dir, "golden"));
    await disks.cloneRootfs(img.rootfs, join(dir, "golden", "rootfs.ext4"));
    await disks.makeWorkDisk(join(dir, "golden", "work.ext4"), 1, img.workSeed);
    await disks.inject(join(dir, "golden", "rootfs.ext4"), [
      { path: "/etc/ssh/ssh_host_ed25519_key", content: host.privateKey, mode: 0o600 },
      { path: "/etc/ssh/ssh_host_ed25519_key.pub", content: `${host.publicKey}\n`, mode: 0o644 },
      { path: "/etc/ssh/banger/authorized_keys", content: await readFile(join(dir, "client.pub")), mode: 0o644 },
    ]);
  });

  afterAll(async () => {
    for (const h of handles) await vmm.kill(h).catch(() => undefined);
    await ns?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function spec(name: string, tap: string): VmmSpec {
    const img = builtDebianImage()!;
    return {
      vmId: name,
      name,
      dir: join(dir, name),
      kernel: img.kernel,
      initrd: img.initrd,
      bootArgs: `${DEFAULT_BOOT_ARGS} ip=${GUEST_IP}::${GW_IP}:255.255.255.0:snapguest:eth0:off`,
      rootfs: join(dir, name, "rootfs.ext4"),
      workDisk: join(dir, name, "work.ext4"),
      vcpus: 2,
      memoryMib: 1024,
      tap,
      mac: "02:fc:00:00:00:02",
      vsockCid: 3,
    };
  }

  async function ssh(command: string, timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
    return ns.exec("ssh", [...sshArgs, command], { timeoutMs, allowFailure: true });
  }

  async function waitSsh(h: VmmHandle): Promise<number> {
    const t0 = performance.now();
    const deadline = Date.now() + SSH_WAIT_MS;
    for (;;) {
      if (!vmm.isAlive(h)) throw new Error(`qemu exited while waiting for SSH; console: ${(await readFile(h.consoleLog, "utf8")).slice(-2000)}`);
      const r = await ssh("true", 20_000).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message }));
      if (r.code === 0) return performance.now() - t0;
      if (Date.now() > deadline) throw new Error(`no SSH after ${SSH_WAIT_MS} ms: ${r.stderr}`);
      await sleep(100);
    }
  }

  let artifacts: SnapshotArtifacts;
  let bootId: string;

  it("boots, snapshots the running guest (paused, state file written, disks copied) and leaves it stopped", async () => {
    const golden = spec("golden", "tapgold");
    const h = await vmm.spawn(golden);
    handles.push(h);
    await vmm.configure(h, golden);
    await vmm.start(h);
    const bootMs = await waitSsh(h);
    bootId = (await ssh("cat /proc/sys/kernel/random/boot_id")).stdout.trim();
    expect(bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await ssh("echo before-snapshot > /root/marker && sync")).code).toBe(0);

    const snapDir = join(dir, "snap");
    await mkdir(snapDir);
    const taken = await snaps.snapshot(h, golden, snapDir);
    artifacts = taken.artifacts;
    expect(artifacts).toEqual(qemuSnapshotArtifacts(snapDir));
    for (const f of [artifacts.state, artifacts.rootfs, artifacts.work]) expect(statSync(f).size).toBeGreaterThan(0);
    expect(statSync(artifacts.rootfs).size).toBe(statSync(golden.rootfs).size);
    const st = await withQmp(h.controlSocket, (q) => q.execute<{ running: boolean; status: string }>("query-status"));
    expect(st.running).toBe(false);
    console.log(
      `qemu snapshot: cold boot to SSH ${(bootMs / 1000).toFixed(1)} s; state ${(statSync(artifacts.state).size / 1e6).toFixed(0)} MB; ` +
        `pause ${taken.timing.pauseMs.toFixed(0)} ms, state ${taken.timing.stateMs.toFixed(0)} ms, disks ${taken.timing.disksMs.toFixed(0)} ms`,
    );
    await vmm.kill(h);
    expect(vmm.isAlive(h)).toBe(false);
  });

  it("restores from the file onto copies of the disks: paused until resumed, then the same boot answers SSH on the same IP", async () => {
    expect(artifacts, "the snapshot test above must have passed").toBeDefined();
    const clone = spec("clone", "tapclone");
    await mkdir(clone.dir);
    await disks.cloneRootfs(artifacts.rootfs, clone.rootfs);
    await disks.cloneRootfs(artifacts.work, clone.workDisk);
    const t0 = performance.now();
    const h = await snaps.restore(clone, artifacts);
    handles.push(h);
    const restoredMs = performance.now() - t0;
    // Paused after the incoming migration: nothing answers until resume.
    const st = await withQmp(h.controlSocket, (q) => q.execute<{ running: boolean; status: string }>("query-status"));
    expect(st).toMatchObject({ running: false });
    expect((await ssh("true", 4_000).catch(() => ({ code: -1 }))).code).not.toBe(0);

    await snaps.resume(h);
    const sshMs = await waitSsh(h);
    console.log(
      `qemu restore: restore() ${restoredMs.toFixed(0)} ms, then SSH ${sshMs.toFixed(0)} ms after resume (total ${(performance.now() - t0).toFixed(0)} ms)`,
    );
    expect((await ssh("cat /proc/sys/kernel/random/boot_id")).stdout.trim()).toBe(bootId);
    expect((await ssh("cat /root/marker")).stdout.trim()).toBe("before-snapshot");
    expect((await ssh("hostname")).stdout.trim()).toBe("snapguest");
    // The clone writes to its own copy: the snapshot's disk is untouched.
    expect((await ssh("echo after-restore > /root/marker && sync")).code).toBe(0);
    await vmm.kill(h);
    expect(existsSync(artifacts.work)).toBe(true);
    const seen = execFileSync("debugfs", ["-R", "cat /marker", artifacts.work], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    expect(seen.trim()).toBe("before-snapshot");
  });

  it("a truncated state file fails the restore with VMM_FAILED and leaves no qemu behind", async () => {
    expect(artifacts).toBeDefined();
    const clone = spec("torn", "tapclone");
    await mkdir(clone.dir);
    await disks.cloneRootfs(artifacts.rootfs, clone.rootfs);
    await disks.cloneRootfs(artifacts.work, clone.workDisk);
    const torn = join(dir, "torn.mig");
    await writeFile(torn, execFileSync("head", ["-c", String(4 << 20), artifacts.state], { maxBuffer: 8 << 20 }));
    const e = await snaps.restore(clone, { ...artifacts, state: torn }).catch((err: unknown) => err);
    expect(e).toMatchObject({ code: "VMM_FAILED" });
    expect((e as Error).message).toMatch(/qemu|QMP|migration/);
    const left = readdirSync("/proc").filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
        return /^\d+$/.test(pid) && cmd.startsWith("qemu-system") && cmd.includes(clone.dir);
      } catch {
        return false;
      }
    });
    expect(left).toEqual([]);
  });

  it("refuses to restore onto the snapshot's own disks, and a missing state file", async () => {
    expect(artifacts).toBeDefined();
    const clone = { ...spec("clone2", "tapclone"), rootfs: artifacts.rootfs, workDisk: artifacts.work };
    await expect(snaps.restore(clone, artifacts)).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/own copies/) });
    await expect(snaps.restore(spec("clone3", "tapclone"), { ...artifacts, state: join(dir, "none.mig") })).rejects.toMatchObject({ code: "DISK_FAILED" });
  });
});
