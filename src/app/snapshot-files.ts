import { basename, dirname, join } from "node:path";
import { BangerError } from "../domain/errors.js";
import {
  snapshotFilesVerdict,
  snapshotVerdict,
  type GoldenSnapshot,
  type SnapshotContext,
  type SnapshotFile,
  type SnapshotVerdict,
} from "../domain/snapshot.js";
import type { Files } from "../ports/files.js";
import type { SnapshotArtifacts } from "../ports/snapshots.js";

// Between the snapshot layer and the create that will use it: turn what a VmmSnapshots.snapshot()
// wrote into a checksummed record, and decide, from a record and the files on disk, whether a
// create may restore it. Everything goes through the Files port.

export interface RecordInput {
  id: string;
  imageId: string;
  imageChecksums: Record<string, string>;
  vmm: GoldenSnapshot["vmm"];
  shape: GoldenSnapshot["shape"];
  artifacts: SnapshotArtifacts;
  createdAt: string;
}

/** Checksum every file the snapshot consists of; all must sit directly in the snapshot directory. */
export async function recordSnapshot(files: Files, input: RecordInput): Promise<GoldenSnapshot> {
  const a = input.artifacts;
  const parts: [SnapshotFile["role"], string | undefined][] = [
    ["state", a.state],
    ["memory", a.memory],
    ["rootfs", a.rootfs],
    ["work", a.work],
  ];
  const out: SnapshotFile[] = [];
  for (const [role, path] of parts) {
    if (path === undefined) continue;
    if (dirname(path) !== a.dir) {
      throw new BangerError("INTERNAL", `snapshot ${role} file ${path} is not in the snapshot directory ${a.dir}`, { hint: "this is a bug in the VMM driver" });
    }
    const st = await files.stat(path);
    if (!st?.isFile) throw new BangerError("DISK_FAILED", `snapshot ${role} file ${path} is missing`, { hint: "take the snapshot again" });
    out.push({ role, name: basename(path), sizeBytes: st.size, sha256: await files.sha256(path) });
  }
  return {
    id: input.id,
    imageId: input.imageId,
    imageChecksums: { ...input.imageChecksums },
    vmm: { ...input.vmm },
    shape: { ...input.shape },
    files: out,
    createdAt: input.createdAt,
  };
}

/**
 * May a create restore this snapshot? The record rules first (cheap), then the files: `deep`
 * hashes every file, which costs seconds for a GiB of disk; without it only presence and size
 * are checked. The caller picks: deep when the snapshot is taken or adopted after a restart,
 * shallow on the create path.
 */
export async function checkSnapshot(files: Files, snap: GoldenSnapshot, dir: string, now: SnapshotContext, opts: { deep: boolean }): Promise<SnapshotVerdict> {
  const rules = snapshotVerdict(snap, now);
  if (!rules.usable) return rules;
  const actual: Record<string, string | undefined> = {};
  for (const f of snap.files) {
    const st = await files.stat(join(dir, f.name));
    if (!st?.isFile) {
      actual[f.name] = undefined;
      continue;
    }
    if (st.size !== f.sizeBytes) {
      return { usable: false, reason: `snapshot ${snap.id}: ${f.role} file ${f.name} is ${st.size} bytes, recorded ${f.sizeBytes} (corrupted or truncated)` };
    }
    actual[f.name] = opts.deep ? await files.sha256(join(dir, f.name)) : f.sha256;
  }
  return snapshotFilesVerdict(snap, actual);
}
