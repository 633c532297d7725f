import type { Image, Vm } from "../domain/types.js";
import type { SnapshotArtifacts, VmmSnapshots } from "../ports/snapshots.js";
import type { Vmm } from "../ports/vmm.js";
import type { AppConfig, AppDeps, SnapshotDisks } from "./deps.js";
import { checkSnapshot } from "./snapshot-files.js";
import { artifactsOf, readSnapshot, snapshotContext, snapshotDirOf, type StoredSnapshot } from "./snapshot-record.js";

// Which way a create brings its guest up: restored from the image's golden snapshot, or booted
// cold with the reason the snapshot was not used (what `vm show` prints). The check is shallow
// (record rules, files present and of their recorded size): hashing a GiB of disk on every create
// would cost more than the boot it saves; the deep check ran when the snapshot was taken.

export type BootSource = { kind: "snapshot"; snap: StoredSnapshot; artifacts: SnapshotArtifacts; snaps: VmmSnapshots } | { kind: "cold"; reason: string };

const VERSION_TTL_MS = 60_000;
const versions = new WeakMap<Vmm, { at: number; version: Promise<string> }>();

/** The VMM's version line, cached for a minute: it spawns the binary, and a create should not pay that each time. */
export function vmmVersion(vmm: Vmm): Promise<string> {
  const hit = versions.get(vmm);
  if (hit && Date.now() - hit.at < VERSION_TTL_MS) return hit.version;
  const version = vmm.version();
  versions.set(vmm, { at: Date.now(), version });
  version.catch(() => versions.delete(vmm));
  return version;
}

export type SourceDeps = Pick<AppDeps, "files" | "snapshots"> & { config: Pick<AppConfig, "imagesDir" | "channelProxy"> };

export async function chooseBootSource(d: SourceDeps, image: Image, vm: Vm, vmm: Vmm, opts: { cold?: boolean }): Promise<BootSource> {
  if (opts.cold) return { kind: "cold", reason: "--cold was asked for" };
  const dir = snapshotDirOf(d.config.imagesDir, image.id);
  const snap = await readSnapshot(d.files, dir);
  if (!snap) return { kind: "cold", reason: `image ${image.name} has no snapshot (\`banger image snapshot ${image.name}\` takes one)` };
  const snaps = d.snapshots(vmm.kind);
  if (!snaps) return { kind: "cold", reason: `${vmm.kind} snapshots are not wired into create` };
  if (!d.config.channelProxy) return { kind: "cold", reason: "banger-vsock is not installed beside bangerd, so a restored guest could not be re-identified" };
  if (vm.workDiskGib !== snap.workDiskGib) {
    return { kind: "cold", reason: `snapshot ${snap.record.id} has a ${snap.workDiskGib} GiB /root disk, this VM asks for ${vm.workDiskGib} GiB` };
  }
  let version: string;
  try {
    version = await vmmVersion(vmm);
  } catch (e) {
    return { kind: "cold", reason: `the ${vmm.kind} version could not be read (${(e as Error).message})` };
  }
  const verdict = await checkSnapshot(d.files, snap.record, dir, snapshotContext(image, vmm.kind, version, { vcpus: vm.vcpus, memoryMib: vm.memoryMib }), {
    deep: false,
  });
  if (!verdict.usable) return { kind: "cold", reason: verdict.reason };
  return { kind: "snapshot", snap, artifacts: artifactsOf(vmm.kind, dir, snap.record), snaps };
}

/** What the warm disk pool copies for creates that restore this snapshot. */
export function snapshotDisks(snap: StoredSnapshot, artifacts: SnapshotArtifacts): SnapshotDisks {
  return { id: snap.record.id, rootfs: artifacts.rootfs, work: artifacts.work, workGib: snap.workDiskGib, hostPublicKey: snap.hostPublicKey };
}

/** After `image snapshot`: warm copies of the new snapshot's disks, so the first create need not copy them. */
export async function warmSnapshotDisks(
  d: Pick<AppDeps, "files" | "diskPool"> & { config: Pick<AppConfig, "imagesDir"> },
  image: Image,
  kind: Vmm["kind"],
): Promise<void> {
  const dir = snapshotDirOf(d.config.imagesDir, image.id);
  const snap = await readSnapshot(d.files, dir);
  if (snap) d.diskPool.refill(image, snapshotDisks(snap, artifactsOf(kind, dir, snap.record)));
}
