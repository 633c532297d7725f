import { SocketGuestChannel } from "../adapters/channel/guest-channel.js";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { LoadedConfig } from "../config/load.js";
import { FileConsoleLogs } from "../adapters/console/files.js";
import { ExecRunner } from "../adapters/exec/runner.js";
import { FirecrackerVmm } from "../adapters/firecracker/driver.js";
import { QemuVmm } from "../adapters/qemu/driver.js";
import { QemuSnapshots } from "../adapters/qemu/snapshot.js";
import { LinuxNetwork } from "../adapters/net/linux-network.js";
import { Ext4Disks } from "../adapters/disk/disks.js";
import { copyFileReflink, sha256File } from "../adapters/disk/files.js";
import { SshGuest } from "../adapters/ssh/guest.js";
import { SshShell } from "../adapters/ssh/shell.js";
import { Ext4BuildDisks } from "../adapters/disk/build-disks.js";
import { checkKey, ensureDefaultKey, generateHostKey } from "../adapters/ssh/keys.js";
import { SqliteStore } from "../adapters/sqlite/store.js";
import { NameGenerator, seededRandom } from "../domain/names.js";
import type { VmmKind } from "../domain/types.js";
import type { Vmm } from "../ports/vmm.js";
import type { AppConfig, AppDeps, Keys } from "../app/deps.js";
import { NodeFiles } from "../adapters/fs/node-files.js";
import { hostCheckConfig, hostFacts } from "../adapters/host/facts.js";
import { DiskPool } from "../app/disk-pool.js";
import { VmOps } from "../app/vm-ops.js";

/** Ports a guest must never reach on the host: the web UI (the API is a Unix socket). */
function blockedPorts(cfg: LoadedConfig): number[] {
  const m = /:(\d+)$/.exec(cfg.config.web.listen);
  return m ? [Number(m[1])] : [];
}

const MIB = 1024 * 1024;

/** The config values the use cases read; the rest of LoadedConfig stays here. */
export function appConfig(cfg: LoadedConfig): AppConfig {
  const c = cfg.config;
  return {
    vmm: c.vmm,
    subnet: c.subnet,
    vcpus: c.vcpus,
    memoryMib: c.memory_mib,
    workDiskGib: c.work_disk_gib,
    sshTimeoutMs: c.ssh_timeout_s * 1000,
    serviceTimeoutMs: c.service_timeout_s * 1000,
    opTimeoutMs: c.op_timeout_s * 1000,
    eventsKeepOps: c.events_keep_ops,
    consoleLogMaxBytes: c.console_log_max_mib * MIB,
    tapPoolSize: c.tap_pool_size,
    imagesDir: cfg.paths.imagesDir,
    vmsDir: cfg.paths.vmsDir,
    socket: cfg.paths.socket,
    hostCheck: hostCheckConfig(cfg),
    channelProxy: channelProxy(cfg.paths.socket),
  };
}

/** banger-vsock beside this bundle (build/bundle, the npm package); absent when bangerd runs from tsc output. */
function channelProxy(socket: string): string[] | undefined {
  const companion = join(dirname(fileURLToPath(import.meta.url)), "banger-vsock.cjs");
  return existsSync(companion) ? [process.execPath, companion, "--socket", socket] : undefined;
}

/** The composition root: every part built once, in dependency order, each handed only its own options. */
export function wire(cfg: LoadedConfig, log: Logger): AppDeps {
  const c = cfg.config;
  mkdirSync(cfg.paths.stateDir, { recursive: true, mode: 0o755 });
  mkdirSync(cfg.paths.imagesDir, { recursive: true });
  mkdirSync(cfg.paths.vmsDir, { recursive: true });
  const config = appConfig(cfg);
  const runner = new ExecRunner();
  const store = SqliteStore.open(cfg.paths.dbFile);
  const files = new NodeFiles({ copy: (src, dst) => copyFileReflink(src, dst), sha256: sha256File });
  const disks = new Ext4Disks({ runner });
  let keyReady: Promise<string> | undefined;
  const keys: Keys = {
    sshKey() {
      // Resolved once per daemon: the key is config-owned and does not move while we run.
      keyReady ??= (async () => {
        if (c.ssh_key) {
          await checkKey(c.ssh_key);
          return c.ssh_key;
        }
        await ensureDefaultKey(cfg.paths.defaultSshKey);
        return cfg.paths.defaultSshKey;
      })().catch((e) => {
        keyReady = undefined;
        throw e;
      });
      return keyReady;
    },
    hostKey: () => generateHostKey(cfg.paths.stateDir),
  };
  const diskPool = new DiskPool(
    { store, disks, files, keys, log, config },
    {
      dir: join(cfg.paths.stateDir, "pool"),
      size: c.disk_pool_size,
      maxGib: c.disk_pool_max_gib,
    },
  );
  // Drivers are made on first use, so a host without firecracker still serves qemu VMs.
  let fc: FirecrackerVmm | undefined;
  let qemu: QemuVmm | undefined;
  const drivers = {
    firecracker: () => (fc ??= new FirecrackerVmm({ bin: c.firecracker_bin, log: log.child({ vmm: "firecracker" }), runner })),
    qemu: () => (qemu ??= new QemuVmm({ bin: c.qemu_bin, accel: c.qemu_accel, stateDir: cfg.paths.stateDir, log: log.child({ vmm: "qemu" }), runner })),
  };
  let qemuSnaps: QemuSnapshots | undefined;
  const seed = process.env.BANGER_NAME_SEED ? Number(process.env.BANGER_NAME_SEED) : undefined;
  return {
    config,
    store,
    ops: new VmOps(),
    log,
    names: new NameGenerator(seed === undefined ? Math.random : seededRandom(seed)),
    vmm: (kind: VmmKind): Vmm => (kind === "firecracker" ? drivers.firecracker() : drivers.qemu()),
    // Firecracker's snapshot driver exists (adapters/firecracker/snapshot.ts) but its golden VM must run on disks inside the
    // snapshot directory, which the app does not arrange yet: Firecracker VMs boot cold.
    snapshots: (kind: VmmKind) =>
      kind === "qemu" ? (qemuSnaps ??= new QemuSnapshots({ vmm: drivers.qemu(), log: log.child({ vmm: "qemu", component: "snapshot" }) })) : undefined,
    network: new LinuxNetwork({
      runner,
      bridge: c.bridge,
      subnet: c.subnet,
      uplink: c.uplink,
      poolSize: c.tap_pool_size,
      blockedHostPorts: blockedPorts(cfg),
      log: log.child({ component: "net" }),
    }),
    diskPool,
    disks,
    files,
    host: hostFacts(cfg, drivers),
    console: new FileConsoleLogs(),
    guest: new SshGuest({ log: log.child({ component: "ssh" }) }),
    shell: new SshShell(),
    buildDisks: new Ext4BuildDisks({ runner, disks }),
    channel: new SocketGuestChannel({ log: log.child({ component: "channel" }) }),
    keys,
  };
}
