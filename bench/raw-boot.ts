import { spawn } from "node:child_process";
import { mkdirSync, openSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { ExecRunner } from "../src/adapters/exec/runner.js";
import { hostTscKhz, terminate } from "../src/adapters/exec/proc.js";
import { Ext4Disks } from "../src/adapters/disk/disks.js";
import { buildQemuArgs } from "../src/adapters/qemu/args.js";
import { probeAccel } from "../src/adapters/qemu/accel.js";
import { SshGuest } from "../src/adapters/ssh/guest.js";
import { generateHostKey } from "../src/adapters/ssh/keys.js";
import { bootNetArg, gatewayOf, macForIp, netmaskOf } from "../src/domain/addr.js";
import { DEFAULT_BOOT_ARGS } from "../src/app/images.js";
import type { BuiltImage } from "../test/helpers/guest-image.js";

/**
 * The baseline: the same image booted by hand with the same QEMU arguments
 * banger uses (minus -S: nothing to configure), on a TAP on the same bridge.
 * Disk preparation happens before the clock starts; the clock measures
 * process spawn → first authenticated SSH `true`, polled like banger polls.
 */
export async function rawBoot(opts: {
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
}): Promise<number> {
  const runner = new ExecRunner();
  const disks = new Ext4Disks({ runner });
  const dir = opts.workDir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const rootfs = join(dir, "rootfs.ext4");
  const work = join(dir, "work.ext4");
  await disks.cloneRootfs(opts.img.rootfs, rootfs);
  await disks.makeWorkDisk(work, opts.workDiskGib, opts.img.workSeed);
  const host = await generateHostKey();
  await disks.inject(rootfs, [
    { path: "/etc/ssh/ssh_host_ed25519_key", content: host.privateKey, mode: 0o600 },
    { path: "/etc/ssh/ssh_host_ed25519_key.pub", content: host.publicKey, mode: 0o644 },
    { path: "/etc/ssh/banger/authorized_keys", content: readFileSync(`${opts.keyPath}.pub`, "utf8"), mode: 0o644 },
  ]);
  const knownHosts = join(dir, "known_hosts");
  writeFileSync(knownHosts, `${opts.ip} ${host.publicKey.trim().split(/\s+/).slice(0, 2).join(" ")}\n`);
  const tap = "bench-raw0";
  await runner.run("ip", ["tuntap", "add", "dev", tap, "mode", "tap"], { allowFailure: true });
  await runner.run("ip", ["link", "set", tap, "master", opts.bridge, "up"]);
  const { accel } = await probeAccel("qemu-system-x86_64", opts.stateDir);
  const args = buildQemuArgs(
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
    { accel, tscKhz: hostTscKhz(), qmpSocket: join(dir, "qmp.sock"), serial: { kind: "file", path: join(dir, "console.log") }, paused: false },
  );
  const guest = new SshGuest({ log: pino({ level: "silent" }) });
  const t0 = performance.now();
  const log = openSync(join(dir, "vmm.log"), "w");
  const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", log, log], detached: true });
  try {
    await guest.waitSsh({ host: opts.ip, user: "root", keyPath: opts.keyPath, knownHostsPath: knownHosts }, 180_000);
    return performance.now() - t0;
  } finally {
    await terminate(child.pid!, undefined, 2_000);
    await runner.run("ip", ["link", "del", tap], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
