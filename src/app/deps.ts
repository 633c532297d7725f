import type { Logger } from "pino";
import type { NameGenerator } from "../domain/names.js";
import type { Image, Vm, VmmKind } from "../domain/types.js";
import type { GuestChannel } from "../ports/channel.js";
import type { ConsoleLogs } from "../ports/console.js";
import type { Disks } from "../ports/disks.js";
import type { Files } from "../ports/files.js";
import type { BuildDisks } from "../ports/build-disks.js";
import type { Guest } from "../ports/guest.js";
import type { GuestShell } from "../ports/guest-shell.js";
import type { HostCheckConfig, HostFacts } from "../ports/host.js";
import type { Network } from "../ports/network.js";
import type { Forwarder } from "../ports/forwarder.js";
import type { Store } from "../ports/store.js";
import type { ImageStore } from "../ports/image-store.js";
import type { Vmm } from "../ports/vmm.js";
import type { VmmSnapshots } from "../ports/snapshots.js";
import type { OpTicket, VmOps } from "./vm-ops.js";

/**
 * The config values use cases read, resolved once by src/daemon/wire.ts.
 * Nothing below src/daemon sees the config file, its sources or its paths
 * beyond these.
 */
export interface AppConfig {
  vmm: VmmKind;
  /** `snapshot = true`: every image's golden snapshot is kept current in the background (snapshot-keeper.ts). */
  autoSnapshot: boolean;
  subnet: string;
  vcpus: number;
  memoryMib: number;
  workDiskGib: number;
  sshTimeoutMs: number;
  serviceTimeoutMs: number;
  /** ready_push: wait-ssh/wait-services take banger-agent's LISTEN/READY instead of polling (vm-ready-push.ts). */
  readyPush: boolean;
  /** Overall deadline of one create or start. */
  opTimeoutMs: number;
  eventsKeepOps: number;
  consoleLogMaxBytes: number;
  tapPoolSize: number;
  /** Paused clones kept per image (vm_pool_size); 0 turns the pool off. */
  vmPoolSize: number;
  /** vm_pool_max_memory_mib: the pool's guest memory, all images together; 0 means no cap. */
  vmPoolMaxMemoryMib: number;
  /** banger's own files: API callers may not name paths under it. */
  stateDir: string;
  imagesDir: string;
  /** Root-only (0700) directory of per-VM service passwords (src/app/vm-secret.ts). */
  secretsDir: string;
  vmsDir: string;
  socket: string;
  /**
   * argv of banger-vsock with bangerd's socket, when it sits beside bangerd: wait-ssh of a VM
   * without NAT also tries SSH over the guest channel with it. Undefined: the IP only.
   */
  channelProxy?: string[];
  hostCheck: HostCheckConfig;
  /** Partial downloads and sets being pulled (`<state_dir>/pulls`). */
  pullsDir: string;
  /** images.store_max_gib in bytes: the budget of pulled images; 0 means none. */
  imageStoreMaxBytes: number;
  /** images.sources: where a digest this node lacks is looked for, in order. */
  imageSources: string[];
  /** images.insecure: plain HTTP to non-loopback sources. */
  imageInsecure: boolean;
}

/** A ready-made set of per-VM disks for one image: a directory holding rootfs.ext4 and work.ext4. */
export interface PreparedDisks {
  dir: string;
  workGib: number;
  hostPublicKey: string;
}

export interface PoolUsage {
  /** Ready sets per image id. */
  sets: Record<string, number>;
  /** Allocated bytes (st_blocks) of every file under the pool, sets being built included. */
  bytes: number;
  /** 0 means no cap. */
  maxBytes: number;
  /** Image ids whose refill is held back by the cap. */
  capped: string[];
}

/** Warm per-VM disk sets (src/app/disk-pool.ts); what the use cases ask of it. */
/** A golden snapshot's disks, as the warm disk pool copies them for creates that restore it. */
export interface SnapshotDisks {
  id: string;
  rootfs: string;
  work: string;
  workGib: number;
  /** The golden VM's host key: a clone answers with it until re-identity. */
  hostPublicKey: string;
}

export interface WarmDisks {
  adopt(images: Image[]): Promise<void>;
  /** A set for this image and work-disk size, or undefined. Never blocks. */
  take(image: Image, workGib: number): PreparedDisks | undefined;
  /** Private copies of this snapshot's disks, or undefined; sets of an older snapshot are discarded. Never blocks. */
  takeSnapshot(image: Image, snapshotId: string): PreparedDisks | undefined;
  /** Make a taken set the VM's directory (one rename). */
  claim(p: PreparedDisks, vmDir: string): Promise<void>;
  /** Top the image's sets up in the background: cold-boot sets, or copies of `snapshot`'s disks. */
  refill(image: Image, snapshot?: SnapshotDisks): void;
  settled(): Promise<void>;
  drop(imageId: string): Promise<void>;
  close(): Promise<void>;
  stats(): Record<string, number>;
  /** Takes that found no ready set while the pool is enabled. */
  readonly misses: number;
  usage(): Promise<PoolUsage>;
}

/** A paused clone a create has taken from the pool: its row (role "pool") and the lock on its name. */
export interface ClaimedMember {
  vm: Vm;
  ticket: OpTicket;
  snapshotId: string;
  /** When its restore finished, and how long filling it took (what `claim` reports). */
  readyAt: number;
  fillMs: number;
}

export interface PausedPoolStats {
  /** Paused members per image id. */
  members: Record<string, number>;
  size: number;
  /** Guest memory of every member, all images together. */
  memoryMib: number;
  /** 0 means no cap. */
  maxMemoryMib: number;
  /** The member being restored now, if any. */
  filling?: string;
  /** Why the last refill stopped short at a memory limit, while it still does. */
  capped?: string;
  /** Creates from a snapshot that found no matching member while the pool is enabled. */
  misses: number;
}

/** Paused VMs restored from golden snapshots (src/app/vm-pool.ts); what the use cases ask of it. */
export interface PausedPool {
  /**
   * A member restored from this snapshot at this shape, taken out of the pool with its name locked, or
   * undefined. Synchronous, so two creates can never take the same one.
   */
  take(imageId: string, want: { snapshotId: string; vcpus: number; memoryMib: number; workDiskGib: number }): ClaimedMember | undefined;
  /** Top every image's pool up in the background, one member at a time; a no-op while a create is in flight. */
  refill(): void;
  /** A create has begun: cancel the member being restored (undone), so it does not compete with that boot. */
  interrupt(): void;
  /** Wait for the refill in progress (tests, the benchmark). */
  settled(): Promise<void>;
  /** Discard the image's members (its snapshot was removed or replaced). */
  drop(imageId: string): Promise<void>;
  /** Daemon shutdown: stop refilling and discard every member. */
  close(): Promise<void>;
  stats(): PausedPoolStats;
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
  /** Snapshot and restore for a VMM kind; undefined where create does not use snapshots (Firecracker, for now). */
  snapshots(kind: VmmKind): VmmSnapshots | undefined;
  network: Network;
  /** Host → guest port forwards that bangerd relays. */
  forwarder: Forwarder;
  diskPool: WarmDisks;
  /** Paused clones per image (vm_pool_size), claimed by creates from a snapshot. */
  vmPool: PausedPool;
  disks: Disks;
  files: Files;
  host: HostFacts;
  /** Guest console logs in the VM dirs: reads with stable offsets, rotation. */
  console: ConsoleLogs;
  guest: Guest;
  /** Streamed commands in a guest (image build's steps). */
  shell: GuestShell;
  /** Grow, check, shrink and scrub ext4 images (image build). */
  buildDisks: BuildDisks;
  /** Byte streams to guest ports over vsock / virtio-serial, independent of the guest network. */
  channel: GuestChannel;
  keys: Keys;
  /** Images kept elsewhere by digest: OCI registries and layouts (pull, push). */
  imageStore: ImageStore;
  names: NameGenerator;
  log: Logger;
}
