import { randomUUID } from "node:crypto";
import { guestSecretFiles, newSecret, removeSecret, storeSecret } from "./vm-secret.js";
import { join } from "node:path";
import { BangerError, asBangerError } from "../domain/errors.js";
import { knownHostsLine } from "../domain/known-hosts.js";
import { GUEST_AGENT_PATH, artifactOf, type Image, type Vm } from "../domain/types.js";
import type { VmmSnapshots } from "../ports/snapshots.js";
import type { Vmm } from "../ports/vmm.js";
import { bootStages, explainGuestFailure, tapStage, type BootContext } from "./boot-stages.js";
import { resolveImage, type CreateDeps } from "./create.js";
import type { AppDeps } from "./deps.js";
import { leaseStage } from "./lease-stage.js";
import { Plan, type Stage } from "./plan.js";
import { checkSnapshot, recordSnapshot } from "./snapshot-files.js";
import { imageChecksums, readSnapshot, snapshotContext, snapshotDirOf, writeSnapshot, type StoredSnapshot } from "./snapshot-record.js";
import { vmmVersion, warmSnapshotDisks } from "./snapshot-source.js";
import { handleOf, specOf } from "./vm-boot.js";
import { cloneRootfs, injectIdentity, makeWorkDisk } from "./vm-disks.js";
import { vmFiles } from "./vm-files.js";
import { sshTarget } from "./vm-ready.js";
import { settleFailed } from "./vm-transitions.js";

export type SnapshotDeps = CreateDeps & Pick<AppDeps, "snapshots" | "channel"> & { config: Pick<AppDeps["config"], "imagesDir"> };

/** Keys of snapshots in progress, in the per-VM lock's name space (VM names cannot contain ':'). */
const snapshotKey = (imageId: string) => `image-snapshot:${imageId}`;

const QUIESCE_TIMEOUT_MS = 60_000;
const CHANNEL_CHECK_MS = 15_000;

export interface SnapshotSummary {
  id: string;
  dir: string;
  vmm: string;
  vcpus: number;
  memoryMib: number;
  workDiskGib: number;
  bytes: number;
  createdAt: string;
  stages: StoredSnapshot["stages"];
}

export function summarize(dir: string, s: StoredSnapshot): SnapshotSummary {
  return {
    id: s.record.id,
    dir,
    vmm: `${s.record.vmm.kind} (${s.record.vmm.version})`,
    vcpus: s.record.shape.vcpus,
    memoryMib: s.record.shape.memoryMib,
    workDiskGib: s.workDiskGib,
    bytes: s.record.files.reduce((n, f) => n + f.sizeBytes, 0),
    createdAt: s.record.createdAt,
    stages: s.stages,
  };
}

/** The image's snapshot, for `image show`; undefined when it has none. */
export async function imageSnapshot(d: Pick<AppDeps, "files"> & { config: Pick<AppDeps["config"], "imagesDir"> }, image: Image) {
  const dir = snapshotDirOf(d.config.imagesDir, image.id);
  const s = await readSnapshot(d.files, dir);
  return s ? summarize(dir, s) : undefined;
}

/**
 * `banger image snapshot`: boot the image once as a hidden golden VM (a row with role "builder",
 * so leases, TAPs, reconcile and cleanup treat it like any VM), wait for SSH, its services and the
 * guest channel, quiesce, snapshot memory, devices and disks into `<image dir>/snapshot`, record
 * it with checksums, and tear the golden VM down. A failure leaves nothing; an older snapshot is
 * replaced only once the new one is complete.
 */
export async function snapshotImage(d: SnapshotDeps, ref: string, opts: { signal?: AbortSignal } = {}): Promise<SnapshotSummary> {
  const image = resolveImage(d, ref);
  const vmm = d.vmm(d.config.vmm);
  const snaps = d.snapshots(vmm.kind);
  if (!snaps) {
    throw new BangerError("BAD_REQUEST", `snapshots of ${vmm.kind} VMs are not supported by create yet`, {
      hint: 'use vmm = "qemu" for snapshots; Firecracker\'s snapshot driver is not wired into the app',
    });
  }
  const imageTicket = d.ops.begin(snapshotKey(image.id), "create", { signal: opts.signal, deadlineMs: d.config.opTimeoutMs });
  const id = randomUUID();
  const name = `golden-${id.slice(0, 8)}`;
  const vmTicket = d.ops.begin(name, "create", { signal: imageTicket.signal });
  try {
    const summary = await runSnapshot(d, { image, vmm, snaps, id, name, signal: vmTicket.signal });
    // In the background, like every refill: copies of the new snapshot's disks for the next creates.
    await warmSnapshotDisks(d, image, vmm.kind).catch((e: Error) =>
      d.log.warn({ stage: "disk-pool", image: image.name, err: e.message }, "cannot warm snapshot disks"),
    );
    return summary;
  } finally {
    vmTicket.release();
    imageTicket.release();
    d.vmPool.refill();
  }
}

interface RunInput {
  image: Image;
  vmm: Vmm;
  snaps: VmmSnapshots;
  id: string;
  name: string;
  signal: AbortSignal;
}

async function runSnapshot(d: SnapshotDeps, c: RunInput): Promise<SnapshotSummary> {
  const cfg = d.config;
  const { image, vmm, snaps } = c;
  const now = new Date().toISOString();
  const version = await vmmVersion(vmm);
  let vm: Vm = {
    id: c.id,
    name: c.name,
    imageId: image.id,
    imageName: image.name,
    state: "creating",
    vmm: vmm.kind,
    // The shape every create from this snapshot must ask for: the image's defaults.
    vcpus: image.defaultVcpus ?? cfg.vcpus,
    memoryMib: image.defaultMemoryMib ?? cfg.memoryMib,
    workDiskGib: image.defaultWorkDiskGib ?? cfg.workDiskGib,
    nat: false,
    dir: join(cfg.vmsDir, c.id),
    workSeedFallback: !artifactOf(image, "work_seed"),
    role: "builder",
    createdAt: now,
    updatedAt: now,
  };
  d.store.insertVm(vm);
  const plan = new Plan(d.store, d.log, vm, "image-snapshot", c.signal, cfg.eventsKeepOps);
  plan.path = "cold";
  const patch = (p: Partial<Vm>) => {
    vm = d.store.updateVm(c.id, p);
  };
  const files = vmFiles(vm.dir);
  const boot: BootContext = { d, image, vmm, vm: () => vm, patch };
  const finalDir = snapshotDirOf(cfg.imagesDir, image.id);
  const partDir = `${finalDir}.part-${c.id.slice(0, 8)}`;
  let hostPublicKey = "";
  let stored: StoredSnapshot | undefined;

  const stages: Stage[] = [
    leaseStage(d, plan, c.id, patch),
    tapStage(boot),
    {
      name: "rootfs",
      run: async ({ onUndo }) => {
        await d.files.mkdir(vm.dir);
        onUndo("vm-dir", () => d.files.remove(vm.dir));
        await cloneRootfs(d, image, files.rootfs);
      },
    },
    { name: "work-disk", run: () => makeWorkDisk(d, image, files.work, vm.workDiskGib) },
    {
      name: "inject",
      run: async ({ onUndo }) => {
        // A host key only the golden VM and its clones' first seconds use: re-identity replaces it.
        // So is its service password: opencode refuses to start without one, and wait-services
        // checks it; every clone writes its own at re-identity and restarts the service.
        const secret = newSecret();
        onUndo("secret", () => removeSecret(d, vm));
        await storeSecret(d, vm, secret);
        hostPublicKey = await injectIdentity(d, files.rootfs, guestSecretFiles(secret));
        await d.files.writeText(files.knownHosts, `${knownHostsLine(vm.ip!, hostPublicKey)}\n`, 0o600);
      },
    },
    // SSH and the image's services: a clone is ready the moment it is restored.
    ...bootStages(boot),
    {
      name: "channel-check",
      run: async ({ signal }) => {
        // Re-identity needs the channel; an image without banger-agent (or the older banger-channel) must keep booting cold.
        const opened = await d.channel
          .open({ name: vm.name, vmm: vm.vmm, dir: vm.dir, vsockCid: vm.vsockCid! }, 22, { timeoutMs: CHANNEL_CHECK_MS, signal })
          .catch((e: unknown) => {
            throw new BangerError("GUEST_NOT_READY", `image ${image.name} has no working guest channel: ${asBangerError(e).message}`, {
              hint: "snapshots need banger-agent in the guest (rebuild the image: `make image-debian`, `make image-alpine`); VMs of this image boot cold",
            });
          });
        opened.stream.destroy();
        // Hang up before quiesce and the snapshot: the golden's agent must be waiting for a host, not mid-session.
        d.channel.release({ name: vm.name, vmm: vm.vmm, dir: vm.dir, vsockCid: vm.vsockCid! });
        return `sshd reachable via ${opened.via}`;
      },
    },
    {
      name: "quiesce",
      run: async () => {
        const target = await sshTarget(d, vm);
        const r = await d.guest.exec(target, "sync && echo 3 > /proc/sys/vm/drop_caches && sync", QUIESCE_TIMEOUT_MS);
        if (r.code !== 0) throw new BangerError("GUEST_NOT_READY", `quiesce failed (exit ${r.code}): ${r.stderr.trim()}`, { hint: "see the guest console" });
        // Then the one path every clone runs in its first second, read back in: a fresh login (sshd
        // re-executes, bash starts) running re-identity's programs. A clone restored with those pages
        // gone reads them through virtio-blk under TCG, which doubled the first SSH login here.
        const w = await d.guest.exec(
          target,
          `if [ -x ${GUEST_AGENT_PATH} ]; then ${GUEST_AGENT_PATH} --help >/dev/null; else perl -e 1; fi && ip link show lo >/dev/null`,
          QUIESCE_TIMEOUT_MS,
        );
        if (w.code !== 0) throw new BangerError("GUEST_NOT_READY", `warming the clone's first programs failed (exit ${w.code}): ${w.stderr.trim()}`);
        return "synced, page cache dropped, first-login path read back";
      },
    },
    {
      name: "snapshot",
      run: async ({ onUndo, signal }) => {
        await d.files.remove(partDir);
        await d.files.mkdir(partDir);
        onUndo("snapshot-files", () => d.files.remove(partDir));
        const handle = handleOf(vm, vmm)!;
        const { artifacts, timing } = await snaps.snapshot(handle, specOf(d, vm, image), partDir, signal);
        // The paused source must never run again: killed now, its TAP and lease released at teardown.
        await vmm.kill(handle);
        patch({ pid: undefined, pidStart: undefined });
        const record = await recordSnapshot(d.files, {
          id: c.id,
          imageId: image.id,
          imageChecksums: imageChecksums(image),
          vmm: { kind: vmm.kind, version },
          shape: { vcpus: vm.vcpus, memoryMib: vm.memoryMib },
          artifacts,
          createdAt: new Date().toISOString(),
        });
        stored = { record, hostPublicKey, ip: vm.ip!, mac: vm.mac!, bootArgs: specOf(d, vm, image).bootArgs, workDiskGib: vm.workDiskGib, stages: [] };
        return `paused ${Math.round(timing.pauseMs)} ms, state ${Math.round(timing.stateMs)} ms, disks ${Math.round(timing.disksMs)} ms`;
      },
    },
    {
      name: "verify",
      run: async () => {
        const v = await checkSnapshot(d.files, stored!.record, partDir, snapshotContext(image, vmm.kind, version, stored!.record.shape), { deep: true });
        if (!v.usable) throw new BangerError("DISK_FAILED", v.reason, { hint: "take the snapshot again" });
        return `${stored!.record.files.length} files checksummed`;
      },
    },
  ];

  try {
    await plan.run(stages, explainGuestFailure(d, vm.dir));
  } catch (e) {
    if (plan.undoFailures > 0) settleFailed(d, vm, e, "failed");
    throw renamed(image.name, e);
  }
  stored!.stages = plan.timings.map((t) => ({ stage: t.stage, ms: Math.round(t.durationMs), ...(t.detail ? { detail: t.detail } : {}) }));
  try {
    // Files complete and checked: the record goes in last, then the new snapshot replaces the old one.
    await writeSnapshot(d.files, partDir, stored!);
    await d.files.remove(finalDir);
    await d.files.rename(partDir, finalDir);
    // Members restored from the snapshot just replaced must never run; the refill after this op restores new ones.
    await d.vmPool.drop(image.id);
  } finally {
    // Success or not, the golden VM goes (its VMM is already off; this releases TAP, lease, dir, row and a leftover partial dir).
    await plan.rollback();
  }
  if (plan.undoFailures > 0) {
    settleFailed(d, vm, new BangerError("INTERNAL", "golden VM teardown incomplete"), "failed");
    d.log.error({ vm: vm.name, stage: "teardown", image: image.name }, "snapshot taken, but its golden VM could not be fully removed");
  }
  d.log.info(
    { image: image.name, snapshot: c.id, stage: "total", stages: stored!.stages.map((t) => `${t.stage}=${t.ms}ms`).join(" ") },
    "image snapshot taken",
  );
  return summarize(finalDir, stored!);
}

/** The plan speaks of the golden VM; the user asked for an image's snapshot. */
function renamed(image: string, e: unknown): BangerError {
  const err = asBangerError(e);
  if (!err.stage) return err;
  const rest = err.message.replace(/^image-snapshot of VM \S+ failed at stage \S+: /, "");
  return new BangerError(err.code, `snapshot of image ${image} failed at stage ${err.stage}: ${rest}`, { hint: err.hint, stage: err.stage, cause: e });
}
