import type { VmmKind } from "../domain/types.js";
import type { VmmHandle, VmmSpec } from "./vmm.js";

/** The files one snapshot consists of, all inside `dir`. Absolute paths. */
export interface SnapshotArtifacts {
  kind: VmmKind;
  dir: string;
  /** Device (and for QEMU also memory) state. */
  state: string;
  /** Guest memory (Firecracker only: QEMU's migration stream carries RAM inside `state`). */
  memory?: string;
  /** The disks as they were at the instant of the snapshot. A restore needs private copies of these. */
  rootfs: string;
  work: string;
}

/** Where snapshot() spent its time while the source was paused. */
export interface SnapshotTiming {
  pauseMs: number;
  stateMs: number;
  disksMs: number;
}

/**
 * Snapshot and restore for one VMM kind: the layer below "create from a snapshot". It knows
 * nothing about images, identities or pools; the app decides which VM is snapshotted, where
 * the files go and who gets a restored copy.
 */
export interface VmmSnapshots {
  readonly kind: VmmKind;
  /**
   * Pause the running guest of `handle` (booted from `spec`) and write a snapshot into `dir`
   * (which must exist and be empty of snapshot files), the disks included as they are at that
   * instant. The source stays paused: resuming it and also restoring the snapshot would run two
   * guests with the same identity and entropy (firecracker-docs random-for-clones.md), so the
   * caller normally kills it.
   */
  snapshot(handle: VmmHandle, spec: VmmSpec, dir: string, signal?: AbortSignal): Promise<{ artifacts: SnapshotArtifacts; timing: SnapshotTiming }>;
  /**
   * Start a new VMM process for `spec` from `snap`, its guest paused. The spec's shape (vCPUs,
   * memory) must be the snapshot's; its disks must be the new VM's private copies of the
   * snapshot's disks; its TAP, sockets and VM directory are the new VM's. The guest keeps the
   * identity it had when snapshotted (IP, MAC, hostname, host keys): re-identity is the caller's.
   */
  restore(spec: VmmSpec, snap: SnapshotArtifacts, signal?: AbortSignal): Promise<VmmHandle>;
  /** Let a restored guest run. */
  resume(handle: VmmHandle, signal?: AbortSignal): Promise<void>;
  /**
   * Plug or unplug the guest's NIC (carrier), where the VMM can: a clone is unplugged from restore
   * until it has its own MAC and IP, so nothing with the golden identity reaches the bridge. Plugging
   * it back announces the NIC's current MAC, so the bridge learns the clone's port at once.
   */
  setLink?(handle: VmmHandle, up: boolean, signal?: AbortSignal): Promise<void>;
}
