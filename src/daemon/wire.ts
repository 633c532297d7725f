import { SocketGuestChannel } from "../adapters/channel/guest-channel.js";
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { LoadedConfig } from "../config/load.js";
import { FileConsoleLogs } from "../adapters/console/files.js";
import { ExecRunner } from "../adapters/exec/runner.js";
import { FirecrackerVmm, resolveJailer } from "../adapters/firecracker/driver.js";
import { cgroup2Mount, type JailerOptions } from "../adapters/firecracker/jail.js";
import { QemuVmm } from "../adapters/qemu/driver.js";
import { QemuSnapshots } from "../adapters/qemu/snapshot.js";
import { LinuxNetwork } from "../adapters/net/linux-network.js";
import { TcpProxy } from "../adapters/net/tcp-proxy.js";
import { hostNameservers } from "../adapters/net/resolv.js";
import { Ext4Disks } from "../adapters/disk/disks.js";
import { copyFileReflink, sha256File } from "../adapters/disk/files.js";
import { SshGuest } from "../adapters/ssh/guest.js";
import { SshShell } from "../adapters/ssh/shell.js";
import { Ext4BuildDisks } from "../adapters/disk/build-disks.js";
import { checkKey, ensureDefaultKey, generateHostKey } from "../adapters/ssh/keys.js";
import { SqliteStore } from "../adapters/sqlite/store.js";
import { OciImageStore } from "../adapters/image-store/oci-store.js";
import { NameGenerator, seededRandom } from "../domain/names.js";
import type { VmmKind } from "../domain/types.js";
import type { Vmm } from "../ports/vmm.js";
import type { AppConfig, AppDeps, Keys } from "../app/deps.js";
import { NodeFiles } from "../adapters/fs/node-files.js";
import { lookupVmmUser, type VmmUser } from "../adapters/exec/privilege.js";
import { hostCheckConfig, hostFacts } from "../adapters/host/facts.js";
import { VMM_DEVICES } from "../adapters/host/setup.js";
import { DiskPool } from "../app/disk-pool.js";
import { VmPool } from "../app/vm-pool.js";
import { VmOps } from "../app/vm-ops.js";
import type { EventBus } from "../app/event-bus.js";
import { observedStore } from "../app/observed-store.js";
import type { HostPrepareConfig } from "../app/host-prepare.js";
import type { HostSetupResult } from "../ports/host-setup.js";

const MIB = 1024 * 1024;

/** What bangerd's start-up host setup (src/app/host-prepare.ts) reads of the config. */
export function hostPrepareConfig(cfg: LoadedConfig): HostPrepareConfig {
  return {
    enabled: cfg.config.host_setup,
    root: process.getuid?.() === 0,
    vmmUser: cfg.config.vmm_user,
    apiGroup: cfg.config.api_group,
    devices: VMM_DEVICES,
    stateDir: cfg.paths.stateDir,
  };
}

/**
 * The account VMMs run as. Only root can switch to it; a daemon run by another user (tests,
 * development) keeps its own uid. A user that does not exist (host_setup off, or useradd failed)
 * or that cannot reach the state dir (`blocked`, found by the host setup) is a warning, not a
 * failure: VMMs run as root, and doctor says so with the fix.
 */
function resolveVmmUser(cfg: LoadedConfig, log: Logger, blocked: string | undefined): VmmUser | undefined {
  const name = cfg.config.vmm_user;
  if (!name || process.getuid?.() !== 0) return undefined;
  const user = lookupVmmUser(name);
  if (!user) log.warn({ vmm_user: name }, "vmm_user does not exist; VMMs run as root (`banger doctor --fix` creates it)");
  else if (blocked) {
    log.warn({ vmm_user: name, blocked }, `vmm_user cannot pass ${blocked}; VMMs run as root (chmod o+x ${blocked})`);
    return undefined;
  }
  return user;
}

/**
 * The jailer, resolved once: it needs root (it chroots and creates cgroups) and a uid to drop to,
 * so without vmm_user (or not root) firecracker runs unjailed whatever jailer_bin says; doctor says so.
 */
function resolveJailerOptions(cfg: LoadedConfig, user: VmmUser | undefined, log: Logger): JailerOptions | undefined {
  const bin = resolveJailer(cfg.config.jailer_bin, cfg.config.firecracker_bin);
  if (!bin) return undefined;
  if (!user) {
    log.warn({ jailer: bin }, "the jailer needs bangerd as root and an existing vmm_user; firecracker runs without it");
    return undefined;
  }
  // BANGER_CGROUP_ROOT: tests point it at the fake jailer's stand-in for the cgroup tree.
  return { bin, user, cgroupRoot: process.env.BANGER_CGROUP_ROOT || cgroup2Mount() };
}

/** The config values the use cases read; the rest of LoadedConfig stays here. */
export function appConfig(cfg: LoadedConfig): AppConfig {
  const c = cfg.config;
  return {
    vmm: c.vmm,
    subnet: c.subnet,
    vcpus: c.vcpus,
    memoryMib: c.memory_mib,
    autoSnapshot: c.snapshot,
    workDiskGib: c.work_disk_gib,
    sshTimeoutMs: c.ssh_timeout_s * 1000,
    serviceTimeoutMs: c.service_timeout_s * 1000,
    readyPush: c.ready_push,
    opTimeoutMs: c.op_timeout_s * 1000,
    eventsKeepOps: c.events_keep_ops,
    consoleLogMaxBytes: c.console_log_max_mib * MIB,
    tapPoolSize: c.tap_pool_size,
    vmPoolSize: c.vm_pool_size,
    vmPoolMaxMemoryMib: c.vm_pool_max_memory_mib,
    stateDir: cfg.paths.stateDir,
    imagesDir: cfg.paths.imagesDir,
    secretsDir: join(cfg.paths.stateDir, "secrets"),
    vmsDir: cfg.paths.vmsDir,
    socket: cfg.paths.socket,
    hostCheck: hostCheckConfig(cfg),
    channelProxy: channelProxy(cfg.paths.socket),
    pullsDir: join(cfg.paths.stateDir, "pulls"),
    imageStoreMaxBytes: c.images.store_max_gib * 1024 ** 3,
    imageSources: c.images.sources,
    imageInsecure: c.images.insecure,
  };
}

/** banger-vsock beside this bundle (build/bundle, the npm package); absent when bangerd runs from tsc output. */
function channelProxy(socket: string): string[] | undefined {
  const companion = join(dirname(fileURLToPath(import.meta.url)), "banger-vsock.cjs");
  return existsSync(companion) ? [process.execPath, companion, "--socket", socket] : undefined;
}

/** The composition root: every part built once, in dependency order, each handed only its own options. */
export function wire(cfg: LoadedConfig, log: Logger, bus?: EventBus, setup?: HostSetupResult): AppDeps {
  const c = cfg.config;
  mkdirSync(cfg.paths.stateDir, { recursive: true, mode: 0o755 });
  mkdirSync(cfg.paths.imagesDir, { recursive: true });
  mkdirSync(cfg.paths.vmsDir, { recursive: true });
  // VM dirs are 0700 each (their VMM user's, or root's); the pool's sets are root's alone.
  chmodSync(cfg.paths.vmsDir, 0o711);
  mkdirSync(join(cfg.paths.stateDir, "pool"), { recursive: true, mode: 0o700 });
  chmodSync(join(cfg.paths.stateDir, "pool"), 0o700);
  const config = appConfig(cfg);
  const vmmUser = resolveVmmUser(cfg, log, setup?.blocked);
  // Only with vmm = firecracker: a qemu host must not fail on a misconfigured jailer_bin.
  const jailer = c.vmm === "firecracker" ? resolveJailerOptions(cfg, vmmUser, log) : undefined;
  // Per-VM passwords: root only, whatever the umask or an older mode said.
  mkdirSync(config.secretsDir, { recursive: true, mode: 0o700 });
  chmodSync(config.secretsDir, 0o700);
  const runner = new ExecRunner();
  const sqlite = SqliteStore.open(cfg.paths.dbFile);
  // Every change the store commits is also pushed to GET /v1/events listeners.
  const store = bus ? observedStore(sqlite, bus) : sqlite;
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
  const ops = new VmOps();
  const diskPool = new DiskPool(
    { store, disks, files, keys, log, config, ops },
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
    firecracker: () =>
      (fc ??= new FirecrackerVmm({
        bin: c.firecracker_bin,
        log: log.child({ vmm: "firecracker" }),
        runner,
        user: vmmUser,
        jailer,
        chrootBase: cfg.paths.jailDir,
      })),
    qemu: () =>
      (qemu ??= new QemuVmm({ bin: c.qemu_bin, accel: c.qemu_accel, stateDir: cfg.paths.stateDir, log: log.child({ vmm: "qemu" }), runner, user: vmmUser })),
  };
  let qemuSnaps: QemuSnapshots | undefined;
  const seed = process.env.BANGER_NAME_SEED ? Number(process.env.BANGER_NAME_SEED) : undefined;
  const parts = {
    config,
    store,
    ops,
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
      // Validated by the config schema; nothing guests send reaches the host at all (web port included).
      natAllow: c.nat.allow,
      nameservers: () => hostNameservers(),
      // Always an owner: the kernel lets anyone who can open /dev/net/tun attach to an owner-less TAP.
      tapOwner: vmmUser
        ? { uid: vmmUser.uid, name: vmmUser.name }
        : { uid: process.getuid?.() ?? 0, name: process.getuid?.() === 0 ? "root" : String(process.getuid?.()) },
      log: log.child({ component: "net" }),
    }),
    forwarder: new TcpProxy(log.child({ component: "forward" })),
    diskPool,
    disks,
    files,
    host: hostFacts(cfg, drivers),
    console: new FileConsoleLogs(),
    guest: new SshGuest({ log: log.child({ component: "ssh" }) }),
    shell: new SshShell(),
    buildDisks: new Ext4BuildDisks({ runner, disks }),
    channel: new SocketGuestChannel({ log: log.child({ component: "channel" }), firecrackerChrootBase: cfg.paths.jailDir }),
    keys,
    imageStore: new OciImageStore({ partialsDir: join(config.pullsDir, "blobs") }),
  };
  // Built last: its members are restored with the same parts a create uses.
  return { ...parts, vmPool: new VmPool(parts) };
}
