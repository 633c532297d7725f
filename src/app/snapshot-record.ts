import { basename, join } from "node:path";
import type { GoldenSnapshot, SnapshotContext } from "../domain/snapshot.js";
import type { Image, VmmKind } from "../domain/types.js";
import type { Files } from "../ports/files.js";
import type { SnapshotArtifacts } from "../ports/snapshots.js";

// Where an image's golden snapshot lives and how its record is kept: a JSON file written last,
// beside the files it describes, inside the image's own directory. A snapshot cut short by a crash
// therefore has no record and is never used; removing the image directory removes the snapshot.

/** What a create needs besides the checksummed record to restore and re-identify a clone. */
export interface StoredSnapshot {
  record: GoldenSnapshot;
  /** The golden guest's SSH host key: a clone answers with it until re-identity replaces it. */
  hostPublicKey: string;
  /** The golden VM's network identity, which every clone wakes up with. */
  ip: string;
  mac: string;
  /** The kernel command line the golden VM booted with: a restore passes the same argv. */
  bootArgs: string;
  workDiskGib: number;
  /** Stage timings of the golden boot and snapshot, for `image show`. */
  stages: { stage: string; ms: number; detail?: string }[];
}

export const SNAPSHOT_RECORD = "snapshot.json";

export function snapshotDirOf(imagesDir: string, imageId: string): string {
  return join(imagesDir, imageId, "snapshot");
}

export async function readSnapshot(files: Files, dir: string): Promise<StoredSnapshot | undefined> {
  const st = await files.stat(join(dir, SNAPSHOT_RECORD));
  if (!st?.isFile) return undefined;
  try {
    return JSON.parse(await files.readText(join(dir, SNAPSHOT_RECORD))) as StoredSnapshot;
  } catch {
    // An unreadable record is the same as none: the create boots cold and a new snapshot replaces it.
    return undefined;
  }
}

export async function writeSnapshot(files: Files, dir: string, s: StoredSnapshot): Promise<void> {
  const tmp = join(dir, `${SNAPSHOT_RECORD}.part`);
  await files.writeText(tmp, `${JSON.stringify(s, null, 2)}\n`, 0o600);
  await files.rename(tmp, join(dir, SNAPSHOT_RECORD));
}

/** The image's files by name with their registered checksums: a rebuilt image invalidates its snapshot. */
export function imageChecksums(image: Image): Record<string, string> {
  return Object.fromEntries(image.artifacts.map((a) => [basename(a.path), a.sha256]));
}

/** What a create would run now, for snapshotVerdict. `version` is the VMM's `version()` line. */
export function snapshotContext(image: Image, kind: VmmKind, version: string, shape: { vcpus: number; memoryMib: number }): SnapshotContext {
  return { imageId: image.id, imageChecksums: imageChecksums(image), vmm: { kind, version }, shape };
}

/** The artifacts of a stored snapshot, rebuilt from the record's file roles. */
export function artifactsOf(kind: VmmKind, dir: string, record: GoldenSnapshot): SnapshotArtifacts {
  const path = (role: string) => {
    const f = record.files.find((x) => x.role === role);
    return f ? join(dir, f.name) : undefined;
  };
  return { kind, dir, state: path("state")!, memory: path("memory"), rootfs: path("rootfs")!, work: path("work")! };
}
