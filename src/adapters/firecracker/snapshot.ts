import { closeSync, existsSync, openSync } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { BangerError } from "../../domain/errors.js";
import type { SnapshotArtifacts, SnapshotTiming, VmmSnapshots } from "../../ports/snapshots.js";
import type { VmmHandle, VmmSpec } from "../../ports/vmm.js";
import type { DriverLog } from "../exec/log.js";
import { DEFAULT_API_TIMEOUT_MS, withClient } from "./client.js";
import { firecrackerPaths, type FirecrackerVmm } from "./driver.js";
import { repointDriveRequest, snapshotCreateRequest, snapshotLoadRequest, vmStateRequest } from "./snapshot-requests.js";
import { loggerSchema, type ApiRequest } from "./schemas.js";

/** File names inside a Firecracker snapshot directory. */
export const FC_SNAPSHOT_FILES = { state: "state.snap", memory: "memory.snap", rootfs: "rootfs.ext4", work: "work.ext4" } as const;

export function firecrackerSnapshotArtifacts(dir: string): SnapshotArtifacts {
  return {
    kind: "firecracker",
    dir,
    state: join(dir, FC_SNAPSHOT_FILES.state),
    memory: join(dir, FC_SNAPSHOT_FILES.memory),
    rootfs: join(dir, FC_SNAPSHOT_FILES.rootfs),
    work: join(dir, FC_SNAPSHOT_FILES.work),
  };
}

// Writing guest memory to the file is the slow part of a snapshot: seconds per GiB on a busy disk.
const CREATE_TIMEOUT_MS = 120_000;
// A File-backed load maps the memory file instead of reading it; the margin is for the state file and devices.
const LOAD_TIMEOUT_MS = 30_000;

export interface FirecrackerSnapshotsOptions {
  vmm: FirecrackerVmm;
  log: DriverLog;
  apiTimeoutMs?: number;
}

/**
 * Firecracker's snapshot path, per snapshot-support.md: PATCH /vm Paused, PUT /snapshot/create;
 * restore on a fresh process with PUT /logger, PUT /snapshot/load (TAP and vsock overridden,
 * not resumed), PATCH /drives to the VM's own disk copies, then PATCH /vm Resumed.
 *
 * Firecracker records each drive's path in the state file and opens that path at load, before
 * any PATCH can repoint it. So a snapshot's source VM must run on disks inside the snapshot
 * directory (the golden boot's layout): those files are the snapshot's disks and stay there.
 */
export class FirecrackerSnapshots implements VmmSnapshots {
  readonly kind = "firecracker" as const;
  private readonly apiTimeoutMs: number;

  constructor(private readonly opts: FirecrackerSnapshotsOptions) {
    this.apiTimeoutMs = opts.apiTimeoutMs ?? DEFAULT_API_TIMEOUT_MS;
  }

  private async send(handle: VmmHandle, reqs: ApiRequest[], timeoutMs: number, signal?: AbortSignal): Promise<void> {
    await withClient(handle.controlSocket, timeoutMs, async (c) => {
      for (const req of reqs) {
        await c.send(req, signal);
        this.opts.log.debug({ pid: handle.pid, method: req.method, path: req.path, stage: "snapshot" }, "firecracker snapshot request");
      }
    });
  }

  private async state(handle: VmmHandle, signal?: AbortSignal): Promise<string | undefined> {
    return withClient(handle.controlSocket, this.apiTimeoutMs, async (c) => (await c.get<{ state?: string }>("/", signal)).state);
  }

  async snapshot(handle: VmmHandle, spec: VmmSpec, dir: string, signal?: AbortSignal): Promise<{ artifacts: SnapshotArtifacts; timing: SnapshotTiming }> {
    signal?.throwIfAborted();
    const artifacts = firecrackerSnapshotArtifacts(dir);
    if (spec.rootfs !== artifacts.rootfs || spec.workDisk !== artifacts.work) {
      throw new BangerError("BAD_REQUEST", `a firecracker snapshot into ${dir} needs its source VM to run on ${artifacts.rootfs} and ${artifacts.work}`, {
        hint: "firecracker opens the drive paths recorded in the snapshot at load: boot the golden VM on disks inside the snapshot directory",
      });
    }
    if (!this.opts.vmm.isAlive(handle))
      throw new BangerError("VMM_FAILED", `firecracker pid ${handle.pid} is not running`, { hint: `see ${handle.consoleLog}` });
    const t0 = performance.now();
    await this.send(handle, [vmStateRequest("Paused")], this.apiTimeoutMs, signal);
    const t1 = performance.now();
    await this.send(handle, [snapshotCreateRequest(artifacts.state, artifacts.memory!)], CREATE_TIMEOUT_MS, signal);
    const t2 = performance.now();
    this.opts.log.info({ vm: spec.name, stage: "snapshot", dir, ms: Math.round(t2 - t0) }, "firecracker snapshot written");
    // The disks need no copy: the paused source's disks are the snapshot's, and Firecracker flushed them to the host.
    return { artifacts, timing: { pauseMs: t1 - t0, stateMs: t2 - t1, disksMs: 0 } };
  }

  async restore(spec: VmmSpec, snap: SnapshotArtifacts, signal?: AbortSignal): Promise<VmmHandle> {
    signal?.throwIfAborted();
    if (snap.kind !== "firecracker" || !snap.memory) {
      throw new BangerError("BAD_REQUEST", `snapshot in ${snap.dir} was taken with ${snap.kind}, not firecracker`, {
        hint: "take a new snapshot with this VMM",
      });
    }
    for (const [what, p] of [
      ["state", snap.state],
      ["memory", snap.memory],
      ["rootfs", snap.rootfs],
      ["work", snap.work],
      ["VM rootfs copy", spec.rootfs],
      ["VM work disk copy", spec.workDisk],
    ] as const) {
      if (!existsSync(p)) throw new BangerError("DISK_FAILED", `cannot restore: the ${what} file ${p} is missing`, { hint: "take the snapshot again" });
    }
    if (spec.rootfs === snap.rootfs || spec.workDisk === snap.work) {
      throw new BangerError("BAD_REQUEST", "a restored VM must run on its own copies of the snapshot's disks", {
        hint: "copy the snapshot's rootfs and work disk into the VM directory first",
      });
    }
    const paths = firecrackerPaths(spec.dir);
    const handle = await this.opts.vmm.spawn(spec, signal);
    try {
      // Firecracker binds the vsock override itself; the logger is not part of a snapshot and must exist first.
      await rm(paths.vsockSocket, { force: true });
      closeSync(openSync(paths.vmmLog, "a"));
      const logger: ApiRequest = { method: "PUT", path: "/logger", body: loggerSchema.parse({ log_path: paths.vmmLog, level: "Warning", show_level: true }) };
      await this.send(handle, [logger], this.apiTimeoutMs, signal);
      const load = snapshotLoadRequest({ statePath: snap.state, memPath: snap.memory, tap: spec.tap, vsockPath: paths.vsockSocket });
      await this.send(handle, [load], LOAD_TIMEOUT_MS, signal);
      await this.send(handle, [repointDriveRequest("rootfs", spec.rootfs), repointDriveRequest("work", spec.workDisk)], this.apiTimeoutMs, signal);
      const state = await this.state(handle, signal);
      if (state !== "Paused")
        throw new BangerError("VMM_FAILED", `restored firecracker reports state ${JSON.stringify(state)}, expected "Paused"`, {
          hint: `see ${handle.consoleLog}`,
        });
    } catch (e) {
      // A failed load ends Firecracker on its own; either way no process outlives the error.
      await this.opts.vmm.kill(handle).catch(() => undefined);
      throw e;
    }
    this.opts.log.info({ vm: spec.name, stage: "restore", from: snap.dir }, "firecracker restored, paused");
    return handle;
  }

  async resume(handle: VmmHandle, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (!this.opts.vmm.isAlive(handle)) {
      throw new BangerError("VMM_FAILED", `firecracker pid ${handle.pid} is not running`, {
        hint: `see ${handle.consoleLog} in ${dirname(handle.controlSocket)}`,
      });
    }
    await this.send(handle, [vmStateRequest("Resumed")], this.apiTimeoutMs, signal);
    const state = await this.state(handle, signal);
    if (state !== "Running")
      throw new BangerError("VMM_FAILED", `firecracker reports state ${JSON.stringify(state)} after resume`, { hint: `see ${handle.consoleLog}` });
  }
}
