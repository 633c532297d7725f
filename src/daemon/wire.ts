import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { LoadedConfig } from "../config/load.js";
import { FileConsoleLogs } from "../adapters/console/files.js";
import { ExecRunner } from "../adapters/exec/runner.js";
import { FirecrackerVmm } from "../adapters/firecracker/driver.js";
import { QemuVmm } from "../adapters/qemu/driver.js";
import { LinuxNetwork } from "../adapters/net/linux-network.js";
import { Ext4Disks } from "../adapters/disk/disks.js";
import { copyFileReflink, sha256File } from "../adapters/disk/files.js";
import { SshGuest } from "../adapters/ssh/guest.js";
import { checkKey, ensureDefaultKey, generateHostKey } from "../adapters/ssh/keys.js";
import { SqliteStore } from "../adapters/sqlite/store.js";
import { NameGenerator, seededRandom } from "../domain/names.js";
import type { VmmKind } from "../domain/types.js";
import type { Vmm } from "../ports/vmm.js";
import type { AppDeps } from "../app/deps.js";
import type { HostProbes } from "../app/doctor.js";
import { DiskPool } from "../app/disk-pool.js";
import { VmOps } from "../app/vm-ops.js";

/**
 * Host probes shared by the daemon's doctor route and the CLI's offline doctor. The drivers answer
 * (Vmm.version(), QemuVmm.accelVerdict()), so doctor reports exactly what a create would use.
 */
export function hostProbes(cfg: LoadedConfig, runner = new ExecRunner()): HostProbes {
  const c = cfg.config;
  const quiet = { info() {}, warn() {}, error() {}, debug() {} };
  const fc = new FirecrackerVmm({ bin: c.firecracker_bin, log: quiet, runner });
  const qemu = new QemuVmm({ bin: c.qemu_bin, accel: c.qemu_accel, stateDir: cfg.paths.stateDir, log: quiet, runner });
  return {
    vmmVersion: (kind) => (kind === "firecracker" ? fc : qemu).version(),
    accelVerdict: () => qemu.accelVerdict(),
    async sshKeyProblem() {
      try {
        await checkKey(c.ssh_key ?? cfg.paths.defaultSshKey);
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    },
  };
}

/** Ports a guest must never reach on the host: the web UI (the API is a Unix socket). */
function blockedPorts(cfg: LoadedConfig): number[] {
  const m = /:(\d+)$/.exec(cfg.config.web.listen);
  return m ? [Number(m[1])] : [];
}

export function wire(cfg: LoadedConfig, log: Logger): AppDeps {
  const c = cfg.config;
  mkdirSync(cfg.paths.stateDir, { recursive: true, mode: 0o755 });
  mkdirSync(cfg.paths.imagesDir, { recursive: true });
  mkdirSync(cfg.paths.vmsDir, { recursive: true });
  const runner = new ExecRunner();
  const store = SqliteStore.open(cfg.paths.dbFile);
  const vmms = new Map<VmmKind, Vmm>();
  const seed = process.env.BANGER_NAME_SEED ? Number(process.env.BANGER_NAME_SEED) : undefined;
  let keyReady: Promise<string> | undefined;

  const deps: Omit<AppDeps, "diskPool"> = {
    cfg,
    store,
    ops: new VmOps(),
    runner,
    log,
    names: new NameGenerator(seed === undefined ? Math.random : seededRandom(seed)),
    vmm(kind): Vmm {
      const existing = vmms.get(kind);
      if (existing) return existing;
      const created: Vmm = kind === "firecracker"
        ? new FirecrackerVmm({ bin: c.firecracker_bin, log: log.child({ vmm: "firecracker" }) })
        : new QemuVmm({ bin: c.qemu_bin, accel: c.qemu_accel, stateDir: cfg.paths.stateDir, log: log.child({ vmm: "qemu" }) });
      vmms.set(kind, created);
      return created;
    },
    network: new LinuxNetwork({
      runner, bridge: c.bridge, subnet: c.subnet, uplink: c.uplink, poolSize: c.tap_pool_size,
      blockedHostPorts: blockedPorts(cfg), log: log.child({ component: "net" }),
    }),
    disks: new Ext4Disks({ runner }),
    console: new FileConsoleLogs(),
    guest: new SshGuest({ log: log.child({ component: "ssh" }) }),
    probes: hostProbes(cfg, runner),
    sshKey() {
      // Resolved once per daemon: the key is config-owned and does not move while we run.
      keyReady ??= (async () => {
        if (c.ssh_key) {
          await checkKey(c.ssh_key);
          return c.ssh_key;
        }
        await ensureDefaultKey(cfg.paths.defaultSshKey);
        return cfg.paths.defaultSshKey;
      })().catch((e) => { keyReady = undefined; throw e; });
      return keyReady;
    },
    hostKey: () => generateHostKey(cfg.paths.stateDir),
    sha256File,
    copyFile: copyFileReflink,
  };
  const full = deps as AppDeps;
  full.diskPool = new DiskPool(full, join(cfg.paths.stateDir, "pool"), c.disk_pool_size, c.disk_pool_max_gib);
  return full;
}
