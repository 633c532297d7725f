import type { Logger } from "pino";
import type { NameGenerator } from "../domain/names.js";
import type { VmmKind } from "../domain/types.js";
import type { ConsoleLogs } from "../ports/console.js";
import type { Disks } from "../ports/disks.js";
import type { Files } from "../ports/files.js";
import type { Guest } from "../ports/guest.js";
import type { HostFacts } from "../ports/host.js";
import type { Network } from "../ports/network.js";
import type { Store } from "../ports/store.js";
import type { Vmm } from "../ports/vmm.js";
import type { DiskPool } from "./disk-pool.js";
import type { HostCheckConfig } from "./doctor.js";
import type { VmOps } from "./vm-ops.js";

/**
 * The config values use cases read, resolved once by src/daemon/wire.ts.
 * Nothing below src/daemon sees the config file, its sources or its paths
 * beyond these.
 */
export interface AppConfig {
  vmm: VmmKind;
  subnet: string;
  vcpus: number;
  memoryMib: number;
  workDiskGib: number;
  sshTimeoutMs: number;
  serviceTimeoutMs: number;
  /** Overall deadline of one create or start. */
  opTimeoutMs: number;
  eventsKeepOps: number;
  consoleLogMaxBytes: number;
  tapPoolSize: number;
  imagesDir: string;
  vmsDir: string;
  socket: string;
  hostCheck: HostCheckConfig;
}

/** The SSH identities: banger's own key for reaching guests, and a fresh host key per VM. */
export interface Keys {
  /** Path of the private key (config ssh_key or the auto-managed default); `.pub` beside it. */
  sshKey(): Promise<string>;
  hostKey(): Promise<{ privateKey: string; publicKey: string }>;
}

/**
 * The composition root's parts. Use cases do not take all of it: each
 * declares the slice it uses (`Pick<AppDeps, …>`), and wire.ts builds the
 * parts in dependency order, so there is no cycle and no cast.
 */
export interface AppDeps {
  config: AppConfig;
  store: Store;
  /** The per-VM operation lock: one create/start/stop/rm at a time per VM. */
  ops: VmOps;
  /** Drivers are created on first use so a host without firecracker still serves qemu VMs. */
  vmm(kind: VmmKind): Vmm;
  network: Network;
  diskPool: DiskPool;
  disks: Disks;
  files: Files;
  host: HostFacts;
  /** Guest console logs in the VM dirs: reads with stable offsets, rotation. */
  console: ConsoleLogs;
  guest: Guest;
  keys: Keys;
  names: NameGenerator;
  log: Logger;
}
