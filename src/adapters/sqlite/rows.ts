// The only place that knows how domain objects are laid out in SQLite.
import type { BuildInfo } from "../../domain/build.js";
import type { Artifact, ArtifactRole, GuestMeta, Image, ImageStatus, LifecycleEvent, StageOutcome, Vm, VmmKind, VmState } from "../../domain/types.js";
import { sha256Hex } from "./hash.js";
import { imageDigest } from "../../domain/image-digest.js";
import type { NewImage, VmPatch } from "../../ports/store.js";

type SqlValue = string | number | null;

export interface ImageRow {
  id: string;
  name: string;
  status: string;
  status_detail: string | null;
  boot_args: string;
  default_vcpus: number | null;
  default_memory_mib: number | null;
  default_work_disk_gib: number | null;
  guest_json: string;
  created_at: string;
  build_json: string | null;
  digest: string | null;
  pulled_from: string | null;
  last_used_at: string | null;
}

export interface ArtifactRow {
  image_id: string;
  role: string;
  path: string;
  sha256: string;
  size_bytes: number;
}

export interface VmRow {
  id: string;
  name: string;
  image_id: string;
  image_name: string;
  state: string;
  vmm: string;
  vcpus: number;
  memory_mib: number;
  work_disk_gib: number;
  nat: number;
  ip: string | null;
  mac: string | null;
  tap: string | null;
  pid: number | null;
  pid_start: number | null;
  dir: string;
  vsock_cid: number | null;
  work_seed_fallback: number;
  created_at: string;
  updated_at: string;
  last_error: string | null;
  role: string | null;
  owner_uid: number | null;
  owner_name: string | null;
  boot_source: string | null;
}

export interface EventRow {
  id: number;
  vm_id: string;
  vm_name: string;
  op: string;
  stage: string;
  started_at: string;
  duration_ms: number;
  outcome: string;
  detail: string | null;
  op_id: number;
}

/** Keeps artifact lists in a stable, human-meaningful order regardless of insert order. */
export const ROLE_ORDER: readonly ArtifactRole[] = ["kernel", "initrd", "rootfs", "work_seed"];

// Optional domain fields are absent (not `undefined`) when the column is NULL,
// so objects read back compare equal to what callers built.
function setOpt<T extends object, K extends keyof T>(obj: T, key: K, v: T[K] | null): void {
  if (v !== null) obj[key] = v;
}

export function imageToRow(img: NewImage, status: ImageStatus, createdAt: string): ImageRow {
  return {
    id: img.id,
    name: img.name,
    status,
    status_detail: null,
    boot_args: img.bootArgs,
    default_vcpus: img.defaultVcpus ?? null,
    default_memory_mib: img.defaultMemoryMib ?? null,
    default_work_disk_gib: img.defaultWorkDiskGib ?? null,
    guest_json: JSON.stringify(img.guest),
    created_at: createdAt,
    build_json: img.build ? JSON.stringify(img.build) : null,
    digest: imageDigest(img, sha256Hex),
    pulled_from: img.pulledFrom ?? null,
    last_used_at: createdAt,
  };
}

export function artifactToRow(imageId: string, a: Artifact): ArtifactRow {
  return { image_id: imageId, role: a.role, path: a.path, sha256: a.sha256, size_bytes: a.sizeBytes };
}

export function rowToArtifact(r: ArtifactRow): Artifact {
  return { role: r.role as ArtifactRole, path: r.path, sha256: r.sha256, sizeBytes: r.size_bytes };
}

export function rowToImage(r: ImageRow, artifacts: ArtifactRow[], aliases: string[]): Image {
  const img: Image = {
    id: r.id,
    name: r.name,
    status: r.status as ImageStatus,
    bootArgs: r.boot_args,
    guest: JSON.parse(r.guest_json) as GuestMeta,
    artifacts: artifacts.map(rowToArtifact).sort((a, b) => ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role)),
    aliases: [...aliases].sort(),
    createdAt: r.created_at,
  };
  setOpt(img, "statusDetail", r.status_detail);
  setOpt(img, "defaultVcpus", r.default_vcpus);
  setOpt(img, "defaultMemoryMib", r.default_memory_mib);
  setOpt(img, "defaultWorkDiskGib", r.default_work_disk_gib);
  if (r.build_json) img.build = JSON.parse(r.build_json) as BuildInfo;
  setOpt(img, "digest", r.digest);
  setOpt(img, "pulledFrom", r.pulled_from);
  setOpt(img, "lastUsedAt", r.last_used_at);
  return img;
}

type VmField = keyof Vm;

// One entry per Vm field: column name and how the value is stored. Both the
// full-row insert and partial patches go through this table, so a new field
// needs exactly one line here (plus its migration).
const VM_COLUMNS: { [K in VmField]-?: { col: keyof VmRow; toDb: (v: Vm[K] | undefined) => SqlValue; nullable?: true } } = {
  id: { col: "id", toDb: (v) => v ?? null },
  name: { col: "name", toDb: (v) => v ?? null },
  imageId: { col: "image_id", toDb: (v) => v ?? null },
  imageName: { col: "image_name", toDb: (v) => v ?? null },
  state: { col: "state", toDb: (v) => v ?? null },
  vmm: { col: "vmm", toDb: (v) => v ?? null },
  vcpus: { col: "vcpus", toDb: (v) => v ?? null },
  memoryMib: { col: "memory_mib", toDb: (v) => v ?? null },
  workDiskGib: { col: "work_disk_gib", toDb: (v) => v ?? null },
  nat: { col: "nat", toDb: (v) => (v === undefined ? null : v ? 1 : 0) },
  ip: { col: "ip", toDb: (v) => v ?? null, nullable: true },
  mac: { col: "mac", toDb: (v) => v ?? null, nullable: true },
  tap: { col: "tap", toDb: (v) => v ?? null, nullable: true },
  pid: { col: "pid", toDb: (v) => v ?? null, nullable: true },
  pidStart: { col: "pid_start", toDb: (v) => v ?? null, nullable: true },
  dir: { col: "dir", toDb: (v) => v ?? null },
  vsockCid: { col: "vsock_cid", toDb: (v) => v ?? null, nullable: true },
  workSeedFallback: { col: "work_seed_fallback", toDb: (v) => (v === undefined ? null : v ? 1 : 0) },
  role: { col: "role", toDb: (v) => v ?? null, nullable: true },
  bootSource: { col: "boot_source", toDb: (v) => v ?? null, nullable: true },
  createdAt: { col: "created_at", toDb: (v) => v ?? null },
  updatedAt: { col: "updated_at", toDb: (v) => v ?? null },
  lastError: { col: "last_error", toDb: (v) => v ?? null, nullable: true },
  ownerUid: { col: "owner_uid", toDb: (v) => v ?? null, nullable: true },
  ownerName: { col: "owner_name", toDb: (v) => v ?? null, nullable: true },
};

function columnValue<K extends VmField>(key: K, v: Vm[K] | undefined): [string, SqlValue] {
  // TS cannot correlate VM_COLUMNS[K] with Vm[K] for a generic K; the mapped type above guarantees it.
  const spec = VM_COLUMNS[key] as { col: string; toDb: (x: Vm[K] | undefined) => SqlValue };
  return [spec.col, spec.toDb(v)];
}

export function vmToRow(vm: Vm): Record<string, SqlValue> {
  const row: Record<string, SqlValue> = {};
  for (const key of Object.keys(VM_COLUMNS) as VmField[]) {
    const [col, v] = columnValue(key, vm[key]);
    row[col] = v;
  }
  return row;
}

/**
 * Columns to SET for a patch. A key present with value `undefined` clears an
 * optional column (callers write `{ pid: undefined }` to mean "no process any
 * more"); for a required field it means "leave as is".
 */
export function vmPatchToColumns(patch: VmPatch): Record<string, SqlValue> {
  const out: Record<string, SqlValue> = {};
  for (const key of Object.keys(patch) as (keyof VmPatch)[]) {
    const spec = VM_COLUMNS[key];
    if (!spec || (patch[key] === undefined && !spec.nullable)) continue;
    const [col, v] = columnValue(key, patch[key]);
    out[col] = v;
  }
  return out;
}

export function rowToVm(r: VmRow): Vm {
  const vm: Vm = {
    id: r.id,
    name: r.name,
    imageId: r.image_id,
    imageName: r.image_name,
    state: r.state as VmState,
    vmm: r.vmm as VmmKind,
    vcpus: r.vcpus,
    memoryMib: r.memory_mib,
    workDiskGib: r.work_disk_gib,
    nat: r.nat === 1,
    dir: r.dir,
    workSeedFallback: r.work_seed_fallback === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
  setOpt(vm, "ip", r.ip);
  setOpt(vm, "mac", r.mac);
  setOpt(vm, "tap", r.tap);
  setOpt(vm, "pid", r.pid);
  setOpt(vm, "pidStart", r.pid_start);
  setOpt(vm, "vsockCid", r.vsock_cid);
  setOpt(vm, "lastError", r.last_error);
  setOpt(vm, "bootSource", r.boot_source);
  if (r.role === "builder" || r.role === "pool") vm.role = r.role;
  setOpt(vm, "ownerUid", r.owner_uid);
  setOpt(vm, "ownerName", r.owner_name);
  return vm;
}

export function eventToRow(ev: LifecycleEvent): Omit<EventRow, "id"> {
  return {
    vm_id: ev.vmId,
    vm_name: ev.vmName,
    op: ev.op,
    stage: ev.stage,
    started_at: ev.startedAt,
    duration_ms: ev.durationMs,
    outcome: ev.outcome,
    detail: ev.detail ?? null,
    op_id: ev.opId,
  };
}

export function rowToEvent(r: EventRow): LifecycleEvent {
  const ev: LifecycleEvent = {
    vmId: r.vm_id,
    vmName: r.vm_name,
    opId: r.op_id,
    op: r.op,
    stage: r.stage,
    startedAt: r.started_at,
    durationMs: r.duration_ms,
    outcome: r.outcome as StageOutcome,
  };
  setOpt(ev, "detail", r.detail);
  return ev;
}
