import type { Logger } from "pino";
import type { LoadedConfig } from "../config/load.js";
import type { NameGenerator } from "../domain/names.js";
import type { VmmKind } from "../domain/types.js";
import type { ConsoleLogs } from "../ports/console.js";
import type { Disks } from "../ports/disks.js";
import type { Guest } from "../ports/guest.js";
import type { Network } from "../ports/network.js";
import type { Runner } from "../ports/runner.js";
import type { Store } from "../ports/store.js";
import type { Vmm } from "../ports/vmm.js";
import type { DiskPool } from "./disk-pool.js";
import type { HostProbes } from "./doctor.js";
import type { VmOps } from "./vm-ops.js";

/** Everything a use case may touch. Built once in src/daemon/wire.ts. */
export interface AppDeps {
  cfg: LoadedConfig;
  store: Store;
  /** The per-VM operation lock: one create/start/stop/rm at a time per VM. */
  ops: VmOps;
  /** Drivers are created on first use so a host without firecracker still serves qemu VMs. */
  vmm(kind: VmmKind): Vmm;
  network: Network;
  /** Warm per-VM disks; set right after the deps object exists (it needs them). */
  diskPool: DiskPool;
  disks: Disks;
  /** Guest console logs in the VM dirs: reads with stable offsets, rotation. */
  console: ConsoleLogs;
  guest: Guest;
  runner: Runner;
  names: NameGenerator;
  log: Logger;
  /** Resolved private key path (config ssh_key or the auto-managed default). */
  sshKey(): Promise<string>;
  /** Host key pair for a new VM; ed25519 via ssh-keygen. */
  hostKey(): Promise<{ privateKey: string; publicKey: string }>;
  probes: HostProbes;
  sha256File(path: string): Promise<string>;
  copyFile(src: string, dst: string): Promise<void>;
}
