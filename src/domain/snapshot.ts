import type { VmmKind } from "./types.js";

// A golden snapshot: one image booted once, paused and saved, so a create can
// restore it instead of booting. Whether a snapshot still fits is a pure
// decision over what was recorded when it was taken and what a create would
// use now; the reason string is what `vm show` prints when a create boots cold.

/** The parts of a snapshot on disk. `memory` exists for Firecracker; QEMU keeps RAM inside `state`. */
export type SnapshotFileRole = "state" | "memory" | "rootfs" | "work";

export interface SnapshotFile {
  role: SnapshotFileRole;
  /** Name inside the snapshot directory. */
  name: string;
  sizeBytes: number;
  sha256: string;
}

export interface SnapshotShape {
  vcpus: number;
  memoryMib: number;
}

export interface GoldenSnapshot {
  id: string;
  imageId: string;
  /** sha256 of each image artifact when the snapshot was taken, by file name (vmlinux, rootfs.ext4, ...). */
  imageChecksums: Record<string, string>;
  /** The VMM that wrote the state, and its version: state formats are only loadable by the same one. */
  vmm: { kind: VmmKind; version: string };
  shape: SnapshotShape;
  files: SnapshotFile[];
  createdAt: string;
}

/** What a create would run now; compared with what the snapshot recorded. */
export interface SnapshotContext {
  imageId: string;
  imageChecksums: Record<string, string>;
  vmm: { kind: VmmKind; version: string };
  shape: SnapshotShape;
}

export type SnapshotVerdict = { usable: true } | { usable: false; reason: string };

const SHA256_RE = /^[0-9a-f]{64}$/;

function short(sha: string | undefined): string {
  return sha ? sha.slice(0, 12) : "(none)";
}

function shapeText(s: SnapshotShape): string {
  return `${s.vcpus} vCPU${s.vcpus === 1 ? "" : "s"} / ${s.memoryMib} MiB`;
}

/** The roles a snapshot of this VMM cannot be restored without. */
export function requiredRoles(kind: VmmKind): SnapshotFileRole[] {
  return kind === "firecracker" ? ["state", "memory", "rootfs", "work"] : ["state", "rootfs", "work"];
}

/**
 * Problems with the record itself (not with the files): a missing role, a duplicated one, a
 * checksum that is not a sha256. An empty list means the record is well formed.
 */
export function snapshotRecordProblems(s: GoldenSnapshot): string[] {
  const problems: string[] = [];
  const roles = s.files.map((f) => f.role);
  for (const role of requiredRoles(s.vmm.kind)) if (!roles.includes(role)) problems.push(`no ${role} file`);
  for (const role of new Set(roles)) if (roles.filter((r) => r === role).length > 1) problems.push(`more than one ${role} file`);
  for (const f of s.files) {
    if (!SHA256_RE.test(f.sha256)) problems.push(`${f.name}: checksum is not a sha256`);
    if (!Number.isInteger(f.sizeBytes) || f.sizeBytes < 0) problems.push(`${f.name}: size ${f.sizeBytes} is not a byte count`);
    if (!f.name || f.name.includes("/")) problems.push(`file name ${JSON.stringify(f.name)} is not a plain name in the snapshot directory`);
  }
  if (!Number.isInteger(s.shape.vcpus) || s.shape.vcpus < 1) problems.push(`vcpus ${s.shape.vcpus} is not a positive integer`);
  if (!Number.isInteger(s.shape.memoryMib) || s.shape.memoryMib < 1) problems.push(`memory ${s.shape.memoryMib} MiB is not a positive integer`);
  return problems;
}

/**
 * May a create restore this snapshot? The first rule that fails names the reason; the order puts
 * the cause a user can act on first (a broken record, then another image, then a rebuilt image,
 * then a VMM upgrade, then a different VM size).
 */
export function snapshotVerdict(s: GoldenSnapshot, now: SnapshotContext): SnapshotVerdict {
  const problems = snapshotRecordProblems(s);
  if (problems.length > 0) return { usable: false, reason: `snapshot ${s.id} is malformed: ${problems.join("; ")}` };
  if (s.imageId !== now.imageId) return { usable: false, reason: `snapshot ${s.id} belongs to image ${s.imageId}, not ${now.imageId}` };
  const names = new Set([...Object.keys(s.imageChecksums), ...Object.keys(now.imageChecksums)]);
  for (const name of [...names].sort()) {
    const then = s.imageChecksums[name];
    const current = now.imageChecksums[name];
    if (then !== current) {
      return {
        usable: false,
        reason: `image file ${name} changed since snapshot ${s.id} was taken (sha256 ${short(then)} then, ${short(current)} now); take a new snapshot`,
      };
    }
  }
  if (s.vmm.kind !== now.vmm.kind) return { usable: false, reason: `snapshot ${s.id} was taken with ${s.vmm.kind}, this VM runs ${now.vmm.kind}` };
  if (s.vmm.version !== now.vmm.version) {
    return {
      usable: false,
      reason: `snapshot ${s.id} was taken with ${s.vmm.kind} ${JSON.stringify(s.vmm.version)}, this host runs ${JSON.stringify(now.vmm.version)}; take a new snapshot`,
    };
  }
  if (s.shape.vcpus !== now.shape.vcpus || s.shape.memoryMib !== now.shape.memoryMib) {
    return { usable: false, reason: `snapshot ${s.id} has ${shapeText(s.shape)}, this VM asks for ${shapeText(now.shape)}` };
  }
  return { usable: true };
}

/**
 * Do the files on disk still match the record? `actual` maps each recorded file name to its
 * sha256 now (undefined when the file is missing). A mismatch means corruption or tampering: the
 * snapshot must be refused and the create must boot cold.
 */
export function snapshotFilesVerdict(s: GoldenSnapshot, actual: Record<string, string | undefined>): SnapshotVerdict {
  for (const f of s.files) {
    const got = actual[f.name];
    if (got === undefined) return { usable: false, reason: `snapshot ${s.id}: ${f.role} file ${f.name} is missing` };
    if (got !== f.sha256) {
      return { usable: false, reason: `snapshot ${s.id}: ${f.role} file ${f.name} is corrupted (sha256 ${short(got)}, recorded ${short(f.sha256)})` };
    }
  }
  return { usable: true };
}
