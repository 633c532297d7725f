import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import { ExecRunner } from "../src/adapters/exec/runner.js";
import { hostTscKhz, terminate } from "../src/adapters/exec/proc.js";
import { Ext4Disks } from "../src/adapters/disk/disks.js";
import { buildQemuArgs } from "../src/adapters/qemu/args.js";
import { probeAccel } from "../src/adapters/qemu/accel.js";
import { QmpClient } from "../src/adapters/qemu/qmp.js";
import { streamReceiver } from "../src/adapters/qemu/snapshot.js";
import { SshGuest } from "../src/adapters/ssh/guest.js";
import { generateHostKey } from "../src/adapters/ssh/keys.js";
import { bootNetArg, gatewayOf, macForIp, netmaskOf } from "../src/domain/addr.js";
import { DEFAULT_BOOT_ARGS } from "../src/app/images.js";
import type { BuiltImage } from "../test/helpers/guest-image.js";

/**
 * The snapshot baseline: QEMU's own snapshot and restore, by hand, with the arguments banger's
 * driver uses. One golden boot → SSH, then `stop` + `migrate` into state.mig + disk copies; each
 * run restores onto fresh disk copies with `-incoming fd:3` on state.mig, waits for the
 * incoming migration, `cont`, and clocks qemu spawn → first authenticated SSH `true`.
 */
export interface RawRestoreResult {
  goldenBootMs: number;
  snapshotMs: number;
  stateBytes: number;
  restoreToSshMs: number[];
}

const QMP_TIMEOUT_MS = 10_000;
const MIGRATE_TIMEOUT_MS = 180_000;

async function qmpWhenUp(sock: string, child: ChildProcess): Promise<QmpClient> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`qemu exited (${child.exitCode}) before QMP answered`);
    try {
      return await QmpClient.connect(sock, 1_000);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(10);
    }
  }
}

async function migrationCompleted(q: QmpClient): Promise<void> {
  const deadline = Date.now() + MIGRATE_TIMEOUT_MS;
  for (;;) {
    const info = await q.execute<{ status?: string }>("query-migrate", undefined, QMP_TIMEOUT_MS);
    if (info.status === "completed") return;
    if (info.status === "failed" || info.status === "cancelled") throw new Error(`migration ${info.status}`);
    if (Date.now() > deadline) throw new Error(`migration still ${info.status} after ${MIGRATE_TIMEOUT_MS} ms`);
    await sleep(10);
  }
}

export async function rawRestore(opts: {
  img: BuiltImage;
  workDir: string;
  bridge: string;
  subnet: string;
  ip: string;
  keyPath: string;
  vcpus: number;
  memoryMib: number;
  workDiskGib: number;
  stateDir: string;
  runs: number;
}): Promise<RawRestoreResult> {
  const runner = new ExecRunner();
  const disks = new Ext4Disks({ runner });
  const dir = opts.workDir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "golden"), { recursive: true });
  const golden = { rootfs: join(dir, "golden", "rootfs.ext4"), work: join(dir, "golden", "work.ext4") };
  await disks.cloneRootfs(opts.img.rootfs, golden.rootfs);
  await disks.makeWorkDisk(golden.work, opts.workDiskGib, opts.img.workSeed);
  const host = await generateHostKey();
  await disks.inject(golden.rootfs, [
    { path: "/etc/ssh/ssh_host_ed25519_key", content: host.privateKey, mode: 0o600 },
    { path: "/etc/ssh/ssh_host_ed25519_key.pub", content: host.publicKey, mode: 0o644 },
    { path: "/etc/ssh/banger/authorized_keys", content: readFileSync(`${opts.keyPath}.pub`, "utf8"), mode: 0o644 },
  ]);
  const knownHosts = join(dir, "known_hosts");
  writeFileSync(knownHosts, `${opts.ip} ${host.publicKey.trim().split(/\s+/).slice(0, 2).join(" ")}\n`);
  const tap = "bench-rst0";
  await runner.run("ip", ["tuntap", "add", "dev", tap, "mode", "tap"], { allowFailure: true });
  await runner.run("ip", ["link", "set", tap, "master", opts.bridge, "up"]);
  const { accel } = await probeAccel("qemu-system-x86_64", opts.stateDir);
  const guest = new SshGuest({ log: pino({ level: "silent" }) });
  const target = { host: opts.ip, user: "root", keyPath: opts.keyPath, knownHostsPath: knownHosts };
  const state = join(dir, "state.mig");
  const snapDisks = { rootfs: join(dir, "snap-rootfs.ext4"), work: join(dir, "snap-work.ext4") };

  const argsFor = (rootfs: string, work: string, qmp: string, incoming?: string) =>
    buildQemuArgs(
      {
        vmId: "raw",
        name: "raw",
        dir,
        kernel: opts.img.kernel,
        initrd: opts.img.initrd,
        bootArgs: `${DEFAULT_BOOT_ARGS} ${bootNetArg(opts.ip, gatewayOf(opts.subnet), netmaskOf(opts.subnet), "raw")}`,
        rootfs,
        workDisk: work,
        vcpus: opts.vcpus,
        memoryMib: opts.memoryMib,
        tap,
        mac: macForIp(opts.ip),
        vsockCid: 3,
      },
      { accel, tscKhz: hostTscKhz(), qmpSocket: qmp, serial: { kind: "file", path: join(dir, "console.log") }, paused: false, incoming },
    );
  const start = (args: string[], stateFd?: number) => {
    const log = openSync(join(dir, "vmm.log"), "a");
    return spawn("qemu-system-x86_64", args, { stdio: ["ignore", log, log, ...(stateFd === undefined ? [] : [stateFd])], detached: true });
  };

  try {
    const qmpSock = join(dir, "golden.qmp");
    let t0 = performance.now();
    const src = start(argsFor(golden.rootfs, golden.work, qmpSock));
    let goldenBootMs: number;
    let snapshotMs: number;
    try {
      await guest.waitSsh(target, 600_000);
      goldenBootMs = performance.now() - t0;
      const q = await qmpWhenUp(qmpSock, src);
      try {
        t0 = performance.now();
        await q.execute("stop");
        await q.execute("migrate-set-parameters", { "max-bandwidth": 64 * 1024 ** 3 });
        const receiver = await streamReceiver(state);
        try {
          await q.execute("migrate", { uri: receiver.uri });
          await migrationCompleted(q);
          await receiver.written;
        } finally {
          await receiver.close();
        }
        await runner.run("cp", ["--reflink=auto", "--sparse=always", golden.rootfs, snapDisks.rootfs], { timeoutMs: 600_000 });
        await runner.run("cp", ["--reflink=auto", "--sparse=always", golden.work, snapDisks.work], { timeoutMs: 600_000 });
        snapshotMs = performance.now() - t0;
      } finally {
        q.close();
      }
    } finally {
      await terminate(src.pid!, undefined, 2_000);
    }

    const restoreToSshMs: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const copy = { rootfs: join(dir, `r${i}-rootfs.ext4`), work: join(dir, `r${i}-work.ext4`) };
      // Disk copies are made before the clock starts, as the raw boot prepares its disks first.
      await runner.run("cp", ["--reflink=auto", "--sparse=always", snapDisks.rootfs, copy.rootfs], { timeoutMs: 600_000 });
      await runner.run("cp", ["--reflink=auto", "--sparse=always", snapDisks.work, copy.work], { timeoutMs: 600_000 });
      const sock = join(dir, `r${i}.qmp`);
      const t = performance.now();
      // The state file is handed over as fd 3, as the driver does: no helper process to start.
      const stateFd = openSync(state, "r");
      const child = start(argsFor(copy.rootfs, copy.work, sock, "fd:3"), stateFd);
      closeSync(stateFd);
      try {
        const q = await qmpWhenUp(sock, child);
        try {
          await migrationCompleted(q);
          await q.execute("cont");
        } finally {
          q.close();
        }
        // As banger waits on a restored guest: straight to the login, no banner probe first.
        await guest.waitSsh(target, 180_000, undefined, { probe: false });
        restoreToSshMs.push(performance.now() - t);
      } finally {
        await terminate(child.pid!, undefined, 2_000);
        rmSync(copy.rootfs, { force: true });
        rmSync(copy.work, { force: true });
      }
    }
    return { goldenBootMs, snapshotMs, stateBytes: statSync(state).size, restoreToSshMs };
  } finally {
    await runner.run("ip", ["link", "del", tap], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
