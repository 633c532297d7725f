import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino, { type Logger } from "pino";
import { FileConsoleLogs } from "../../src/adapters/console/files.js";
import { TcpProxy } from "../../src/adapters/net/tcp-proxy.js";
import { SqliteStore } from "../../src/adapters/sqlite/store.js";
import { OciImageStore } from "../../src/adapters/image-store/oci-store.js";
import type { AppDeps } from "../../src/app/deps.js";
import { DiskPool } from "../../src/app/disk-pool.js";
import { VmPool } from "../../src/app/vm-pool.js";
import { NodeFiles } from "../../src/adapters/fs/node-files.js";
import { appConfig } from "../../src/daemon/wire.js";
import type { HostFacts } from "../../src/ports/host.js";
import { VmOps } from "../../src/app/vm-ops.js";
import { loadConfig } from "../../src/config/load.js";
import { BangerError } from "../../src/domain/errors.js";
import { NameGenerator, seededRandom } from "../../src/domain/names.js";
import type { Disks } from "../../src/ports/disks.js";
import type { BuildDisks } from "../../src/ports/build-disks.js";
import type { Guest } from "../../src/ports/guest.js";
import type { GuestShell } from "../../src/ports/guest-shell.js";
import type { Network } from "../../src/ports/network.js";
import type { Vmm, VmmHandle } from "../../src/ports/vmm.js";
import type { VmmSnapshots } from "../../src/ports/snapshots.js";

export interface WorldOptions {
  /** Make each stage wait on this before it runs, so tests can interleave operations. */
  gate?: (stage: string) => Promise<void>;
  /** Host calls that throw, to drive the failed state: "releaseTap", "kill", "stop". */
  broken?: Set<string>;
  /** Extra config lines. */
  extraToml?: string;
  /** Replace the recording disk fakes (the pool tests write content they can read back). */
  disks?: Disks;
  log?: Logger;
  /** The guest's answer to an SSH command (stop's in-guest shutdown). */
  exec?: (command: string) => { code: number; stdout: string; stderr: string };
  /** The guest's answer to a streamed command (image build steps): its output lines and exit code. */
  shell?: (command: string, input?: string) => { code: number; lines?: string[] } | Promise<{ code: number; lines?: string[] }>;
  /** The QEMU snapshot driver (create from a snapshot); absent: none, every create boots cold. */
  snapshots?: VmmSnapshots;
  /** banger-vsock's argv, which re-identity needs; absent: none. */
  channelProxy?: string[];
  /** MemAvailable the host reports, in MiB (the paused pool's headroom check); default 64 GiB. */
  memAvailableMib?: number;
}

/** Port fakes that record what is held, so every failure path can be checked for leaks. */
export function world(failAt?: string, poolSize = 0, opts: WorldOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), "banger-plan-"));
  const cfgFile = join(dir, "config.toml");
  writeFileSync(cfgFile, `vmm = "qemu"\nstate_dir = "${dir}/state"\nsocket = "${dir}/s.sock"\n${opts.extraToml ?? ""}`);
  const cfg = loadConfig({ env: { env: { BANGER_CONFIG: cfgFile }, uid: 1000, home: dir } });
  mkdirSync(cfg.paths.vmsDir, { recursive: true });
  const store = SqliteStore.open(cfg.paths.dbFile);
  const held = {
    taps: new Set<string>(),
    nat: new Set<string>(),
    procs: new Set<number>(),
    stops: [] as { timeoutMs: number; graceMs?: number }[],
    peers: [] as Array<readonly [string, string]>,
  };
  const boom = (stage: string) => {
    if (failAt === stage) throw new BangerError("INTERNAL", `injected failure at ${stage}`);
  };
  const gate = async (stage: string) => {
    await opts.gate?.(stage);
    boom(stage);
  };
  let nextTap = 0;
  let nextPid = 1000;
  const network: Network = {
    ensureHost: async () => undefined,
    poolStats: () => ({ idle: 0, size: 0, misses: 0 }),
    acquireTap: async () => {
      await gate("tap");
      const t = `tap-pool-${nextTap++}`;
      held.taps.add(t);
      return t;
    },
    releaseTap: async (t) => {
      if (opts.broken?.has("releaseTap")) throw new Error("ip link: device busy");
      held.taps.delete(t);
    },
    enableNat: async (ip) => {
      boom("nat");
      held.nat.add(ip);
    },
    disableNat: async (ip) => {
      held.nat.delete(ip);
    },
    setPeers: async (pairs) => {
      held.peers = [...pairs];
    },
    status: async () => {
      throw new Error("unused");
    },
    listTaps: async () => [...held.taps],
    adopt: async () => undefined,
    close: async () => undefined,
  };
  const disks: Disks = opts.disks ?? {
    cloneRootfs: async (_s, dst) => {
      boom("rootfs");
      writeFileSync(dst, "rootfs");
    },
    makeWorkDisk: async (dst) => {
      boom("work-disk");
      writeFileSync(dst, "work");
    },
    inject: async () => {
      boom("inject");
    },
    ext4Problem: async () => undefined,
    // A fake rootfs holds a guest file when its text names the path.
    hasFile: async (image, path) => existsSync(image) && readFileSync(image, "utf8").includes(path),
  };
  const vmm: Vmm = {
    kind: "qemu",
    controlSocket: (dir) => join(dir, "qmp.sock"),
    consoleLog: (dir) => join(dir, "console.log"),
    spawn: async (spec) => {
      await gate("spawn-vmm");
      const pid = nextPid++;
      held.procs.add(pid);
      return { kind: "qemu", pid, pidStart: 1, controlSocket: join(spec.dir, "qmp.sock"), consoleLog: join(spec.dir, "console.log") };
    },
    configure: async () => boom("configure"),
    start: async (h: VmmHandle) => {
      boom("start");
      writeFileSync(h.consoleLog, "Linux version 6.1\nlogin:\n");
    },
    guestStopCommand: "poweroff",
    stop: async (h, o) => {
      held.stops.push(o);
      if (opts.broken?.has("stop")) throw new BangerError("VMM_FAILED", "survived SIGKILL");
      const was = held.procs.delete(h.pid);
      return { how: was ? "vmm-request" : "already-gone", ms: 0 };
    },
    kill: async (h) => {
      if (opts.broken?.has("kill")) throw new BangerError("VMM_FAILED", "survived SIGKILL");
      held.procs.delete(h.pid);
    },
    isAlive: (h) => held.procs.has(h.pid),
    version: async () => "fake",
  };
  const guest: Guest = {
    waitSsh: async (_t, _ms, signal) => {
      await gate("wait-ssh");
      signal?.throwIfAborted();
    },
    waitPort: async () => boom("wait-services"),
    // A guest that enforces the password it was given: 200 with Basic auth, 401 without.
    httpStatus: async (_h, _p, _path, headers) => (headers.authorization?.startsWith("Basic ") ? 200 : 401),
    exec: async (_t, command) => opts.exec?.(command) ?? { code: 0, stdout: "", stderr: "" },
  };
  const shellCalls: { command: string; input?: string }[] = [];
  const shell: GuestShell = {
    run: async (_t, command, o) => {
      shellCalls.push({ command, input: o.input });
      const r = (await opts.shell?.(command, o.input)) ?? { code: 0 };
      for (const l of r.lines ?? []) o.onLine("stdout", l);
      o.signal?.throwIfAborted();
      return { code: r.code };
    },
  };
  const diskCalls: string[] = [];
  const buildDisks: BuildDisks = {
    growTo: async (image, bytes) => {
      boom("grow");
      diskCalls.push(`grow ${image} ${bytes}`);
    },
    check: async (image) => {
      boom("fsck");
      diskCalls.push(`check ${image}`);
      return "clean";
    },
    shrinkToMin: async (image) => {
      diskCalls.push(`shrink ${image}`);
      return 1024 * 1024;
    },
    scrub: async (image, o) => {
      diskCalls.push(`scrub ${image} ${o.remove.length}+${o.empty.length}`);
    },
    size: async () => 1024 ** 3,
  };
  const keyPath = join(dir, "id");
  writeFileSync(`${keyPath}.pub`, "ssh-ed25519 AAAA test\n");
  const config = { ...appConfig(cfg), channelProxy: opts.channelProxy };
  mkdirSync(config.secretsDir, { recursive: true, mode: 0o700 });
  const files = new NodeFiles({ copy: async () => undefined, sha256: async () => "0".repeat(64) });
  const keys = { sshKey: async () => keyPath, hostKey: async () => ({ privateKey: "PRIV", publicKey: "ssh-ed25519 HOSTKEY banger" }) };
  const log = opts.log ?? pino({ level: "silent" });
  const host: HostFacts = {
    vmmVersion: async () => "x",
    accelVerdict: async () => ({ accel: "tcg", reason: "test" }),
    sshKeyProblem: async () => undefined,
    nameservers: () => ["192.0.2.53"],
    memAvailableMib: () => opts.memAvailableMib ?? 64 * 1024,
    which: (t) => `/usr/bin/${t}`,
    kvm: () => ({ ok: false, detail: "test" }),
    dirProblem: () => undefined,
    privilege: async () => ({
      root: true,
      vmmUid: 999,
      vmmInKvm: true,
      apiGid: 998,
      qemuSandbox: true,
      setpriv: "/usr/bin/setpriv",
      tun: { present: true, ok: true, via: "an ACL entry" },
      kvm: { present: true, ok: true, via: "group kvm" },
    }),
  };
  const base: Omit<AppDeps, "vmPool"> = {
    config,
    store,
    ops: new VmOps(),
    network,
    disks,
    files,
    host,
    guest,
    shell,
    buildDisks,
    keys,
    log,
    // The real adapter: these worlds never pull, and it touches nothing until asked.
    imageStore: new OciImageStore({ partialsDir: join(dir, "state", "pulls", "blobs") }),
    channel: {
      open: () => Promise.reject(new BangerError("CHANNEL_FAILED", "the unit-test world has no guest channel")),
      // banger-channel's RUN, answered by the same fake as SSH commands, recorded as "channel:run".
      run: async (_t, script) => {
        shellCalls.push({ command: "channel:run", input: script });
        const r = (await opts.shell?.("channel:run", script)) ?? { code: 0 };
        return { code: r.code, lines: r.lines ?? [] };
      },
      ready: () => Promise.reject(new BangerError("CHANNEL_UNSUPPORTED", "the unit-test world pushes no readiness")),
      release: () => undefined,
    },
    console: new FileConsoleLogs(),
    names: new NameGenerator(seededRandom(1)),
    vmm: () => vmm,
    forwarder: new TcpProxy(log),
    snapshots: () => opts.snapshots,
    diskPool: new DiskPool({ store, disks, files, keys, log, config }, { dir: join(dir, "pool"), size: poolSize, maxGib: 0 }),
  };
  const d: AppDeps = { ...base, vmPool: new VmPool(base) };
  const imgDir = join(dir, "img");
  mkdirSync(imgDir);
  store.insertImage({
    id: "img1",
    name: "deb-1",
    bootArgs: "console=ttyS0",
    guest: {
      os: "debian",
      services: [
        { name: "ssh", port: 22 },
        { name: "opencode", port: 4096 },
      ],
    },
    artifacts: [
      { role: "kernel", path: join(imgDir, "vmlinux"), sha256: "a".repeat(64), sizeBytes: 1 },
      { role: "rootfs", path: join(imgDir, "rootfs.ext4"), sha256: "b".repeat(64), sizeBytes: 1 },
      { role: "work_seed", path: join(imgDir, "seed.ext4"), sha256: "c".repeat(64), sizeBytes: 1 },
    ],
  });
  return { d, held, store, cfg, dir, shellCalls, diskCalls };
}
