import { createWriteStream, existsSync } from "node:fs";
import { chown, mkdtemp, rename, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { BangerError } from "../../domain/errors.js";
import type { SnapshotArtifacts, SnapshotTiming, VmmSnapshots } from "../../ports/snapshots.js";
import type { VmmHandle, VmmSpec } from "../../ports/vmm.js";
import { copyFileReflink } from "../disk/files.js";
import type { DriverLog } from "../exec/log.js";
import type { QemuVmm } from "./driver.js";
import { withQmp, type QmpClient } from "./qmp.js";

/** File names inside a QEMU snapshot directory. The migration stream holds devices and RAM. */
export const QEMU_SNAPSHOT_FILES = { state: "state.mig", rootfs: "rootfs.ext4", work: "work.ext4" } as const;

export function qemuSnapshotArtifacts(dir: string): SnapshotArtifacts {
  return {
    kind: "qemu",
    dir,
    state: join(dir, QEMU_SNAPSHOT_FILES.state),
    rootfs: join(dir, QEMU_SNAPSHOT_FILES.rootfs),
    work: join(dir, QEMU_SNAPSHOT_FILES.work),
  };
}

const QMP_TIMEOUT_MS = 5_000;
// Writing touched guest RAM (about 100 MB for an idle Debian guest) to a file; minutes of margin for a loaded host.
const MIGRATE_OUT_TIMEOUT_MS = 180_000;
const MIGRATE_IN_TIMEOUT_MS = 120_000;
const POLL_MS = 25;
// QEMU 7.2 throttles migration to 32 MiB/s by default, which would make a 1 GiB guest's snapshot take
// half a minute. To a local file there is nothing to protect: lift it.
const MAX_BANDWIDTH = 64 * 1024 * 1024 * 1024;

// Three announcements, 50 ms after resume and then 100 ms apart.
const ANNOUNCE = { initial: 50, max: 550, rounds: 3, step: 100 };

/**
 * Where the outgoing migration stream goes: a UNIX socket we listen on, written to `file`. Not
 * `exec:cat > file`: when the migration completes QEMU closes the pipe and SIGTERMs the helper if
 * it has not exited yet, which can cut off the end of the stream still in the pipe. Here the file
 * is complete exactly when the stream has ended and the write stream has flushed and closed; it
 * appears under its final name only then.
 */
export async function streamReceiver(
  file: string,
  opts: { owner?: { uid: number; gid: number } } = {},
): Promise<{ uri: string; written: Promise<void>; close(): Promise<void> }> {
  // A short socket path whatever the snapshot directory is (sun_path holds 107 bytes).
  const sockDir = await mkdtemp(join(tmpdir(), "banger-snapmig-"));
  const sock = join(sockDir, "m.sock");
  // A QEMU running as vmm_user must reach the socket (search on the 0700 dir, write on the socket);
  // nobody else may, since the first connection is taken as the stream.
  if (opts.owner) await chown(sockDir, opts.owner.uid, opts.owner.gid);
  const part = `${file}.part`;
  let conn: Socket | undefined;
  const server = createServer();
  const written = new Promise<void>((resolve, reject) => {
    server.once("connection", (c) => {
      conn = c;
      // One stream per snapshot: later connections are not QEMU's.
      server.on("connection", (other) => other.destroy());
      pipeline(c, createWriteStream(part))
        .then(() => rename(part, file))
        .then(resolve, reject);
    });
    server.once("error", reject);
  });
  // Until the caller awaits it, a failure must not be an unhandled rejection.
  written.catch(() => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
    server.listen(sock);
  });
  if (opts.owner) await chown(sock, opts.owner.uid, opts.owner.gid);
  return {
    uri: `unix:${sock}`,
    written,
    async close() {
      conn?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(sockDir, { recursive: true, force: true });
      await rm(part, { force: true });
    },
  };
}

export interface QemuSnapshotsOptions {
  vmm: QemuVmm;
  log: DriverLog;
  /** The disk copy; cp --reflink=auto --sparse=always by default. */
  copy?: (src: string, dst: string) => Promise<void>;
}

interface MigrateInfo {
  status?: string;
  "error-desc"?: string;
}

/**
 * QEMU's snapshot path: QMP `stop`, `migrate` into state.mig (device state and RAM in one stream,
 * received on a UNIX socket), the disks copied while the guest is still stopped; restore = the
 * boot's argv plus `-incoming fd:3` on state.mig, and `cont` only after the incoming migration has
 * completed (a `cont` sent during "inmigrate" is lost: ../shared/feasibility/REPORT.md §8).
 */
export class QemuSnapshots implements VmmSnapshots {
  readonly kind = "qemu" as const;
  private readonly copy: (src: string, dst: string) => Promise<void>;

  constructor(private readonly opts: QemuSnapshotsOptions) {
    this.copy = opts.copy ?? ((src, dst) => copyFileReflink(src, dst));
  }

  /** Poll query-migrate until the migration is done; failed or cancelled is an error naming QEMU's reason. */
  private async migrationDone(q: QmpClient, dir: string, what: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      const info = await q.execute<MigrateInfo>("query-migrate", undefined, QMP_TIMEOUT_MS);
      if (info.status === "completed") return;
      if (info.status === "failed" || info.status === "cancelled") {
        throw await this.opts.vmm.failed(dir, `${what} ${info.status}${info["error-desc"] ? `: ${info["error-desc"]}` : ""}`);
      }
      if (Date.now() > deadline) {
        throw new BangerError("TIMEOUT", `${what} did not complete within ${timeoutMs} ms (status ${info.status ?? "none"})`, {
          hint: "the host may be short of disk space or CPU; see vmm.log in the VM directory",
        });
      }
      await sleep(POLL_MS);
    }
  }

  async snapshot(handle: VmmHandle, spec: VmmSpec, dir: string, signal?: AbortSignal): Promise<{ artifacts: SnapshotArtifacts; timing: SnapshotTiming }> {
    signal?.throwIfAborted();
    if (!this.opts.vmm.isAlive(handle)) throw await this.opts.vmm.failed(spec.dir, "qemu is not running");
    const artifacts = qemuSnapshotArtifacts(dir);
    if (!existsSync(dir)) throw new BangerError("DISK_FAILED", `snapshot directory ${dir} does not exist`, { hint: "create it before taking the snapshot" });
    const t0 = performance.now();
    let t1 = t0;
    const receiver = await streamReceiver(artifacts.state, { owner: this.opts.vmm.vmmUser });
    try {
      await withQmp(
        handle.controlSocket,
        async (q) => {
          // `stop` returns once the vCPUs are stopped and QEMU has drained and flushed the block devices.
          await q.execute("stop");
          t1 = performance.now();
          await q.execute("migrate-set-parameters", { "max-bandwidth": MAX_BANDWIDTH });
          await q.execute("migrate", { uri: receiver.uri });
          await this.migrationDone(q, spec.dir, "snapshot migration", MIGRATE_OUT_TIMEOUT_MS, signal);
        },
        QMP_TIMEOUT_MS,
      );
      // "completed" is QEMU's side; the file is complete once our end has written and closed it.
      const late = sleep(MIGRATE_OUT_TIMEOUT_MS, "late" as const, { ref: false });
      if ((await Promise.race([receiver.written.then(() => "ok" as const), late])) === "late") {
        throw new BangerError("TIMEOUT", `the snapshot state file ${artifacts.state} was not written within ${MIGRATE_OUT_TIMEOUT_MS} ms of the migration`, {
          hint: "check free space (`df -h`) where the snapshot goes",
        });
      }
    } finally {
      await receiver.close();
    }
    const t2 = performance.now();
    // Still stopped: the disks are exactly as the guest last saw them.
    for (const [src, dst] of [
      [spec.rootfs, artifacts.rootfs],
      [spec.workDisk, artifacts.work],
    ] as const) {
      if (src !== dst) await this.copy(src, dst);
    }
    const t3 = performance.now();
    this.opts.log.info({ vm: spec.name, stage: "snapshot", dir, ms: Math.round(t3 - t0) }, "qemu snapshot written");
    return { artifacts, timing: { pauseMs: t1 - t0, stateMs: t2 - t1, disksMs: t3 - t2 } };
  }

  async restore(spec: VmmSpec, snap: SnapshotArtifacts, signal?: AbortSignal): Promise<VmmHandle> {
    signal?.throwIfAborted();
    if (snap.kind !== "qemu") {
      throw new BangerError("BAD_REQUEST", `snapshot in ${snap.dir} was taken with ${snap.kind}, not qemu`, { hint: "take a new snapshot with this VMM" });
    }
    for (const [what, p] of [
      ["state", snap.state],
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
    const handle = await this.opts.vmm.spawnIncoming(spec, snap.state, signal);
    try {
      await withQmp(
        handle.controlSocket,
        async (q) => {
          await this.migrationDone(q, spec.dir, "incoming migration", MIGRATE_IN_TIMEOUT_MS, signal);
          // The source was stopped, and its run state travels with the stream: the guest arrives paused.
          const st = await q.execute<{ status: string; running: boolean }>("query-status");
          if (st.running) throw new BangerError("VMM_FAILED", `restored qemu is already running (${st.status})`, { hint: "the snapshot was not taken paused" });
        },
        QMP_TIMEOUT_MS,
      );
    } catch (e) {
      await this.opts.vmm.kill(handle).catch(() => undefined);
      throw e;
    }
    this.opts.log.info({ vm: spec.name, stage: "restore", from: snap.dir }, "qemu restored, paused");
    return handle;
  }

  async resume(handle: VmmHandle, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const dir = dirname(handle.controlSocket);
    if (!this.opts.vmm.isAlive(handle)) throw await this.opts.vmm.failed(dir, "qemu is not running");
    await withQmp(
      handle.controlSocket,
      async (q) => {
        await q.execute("cont");
        const st = await q.execute<{ status: string; running: boolean }>("query-status");
        if (!st.running) throw await this.opts.vmm.failed(dir, `guest did not resume: qemu status is ${st.status}`);
        // While the source VM still holds its TAP (paused, not yet killed), the host bridge maps the
        // guest's MAC to that port, and an idle guest sends nothing that would move it. QEMU's own
        // announcement (RARP from the NIC's MAC, out of the new TAP) moves it now.
        await q.execute("announce-self", ANNOUNCE);
      },
      QMP_TIMEOUT_MS,
    );
  }

  async setLink(handle: VmmHandle, up: boolean, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    await withQmp(
      handle.controlSocket,
      async (q) => {
        // net0 is the id the driver gives the TAP netdev (args.ts); QEMU drops every frame while it is down.
        await q.execute("set_link", { name: "net0", up });
        // The guest changed the NIC's MAC while it was down; QEMU's announcement uses the current one.
        if (up) await q.execute("announce-self", ANNOUNCE);
      },
      QMP_TIMEOUT_MS,
    );
  }
}
