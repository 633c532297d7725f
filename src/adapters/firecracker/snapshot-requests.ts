import { z } from "zod";
import { BangerError } from "../../domain/errors.js";
import { resourceId, type ApiRequest } from "./schemas.js";

// Request bodies for Firecracker's snapshot API (v1.16.1): PATCH /vm, PUT /snapshot/create,
// PUT /snapshot/load, PATCH /drives. Strict like the others: Firecracker denies unknown fields.

export const vmStateSchema = z.object({ state: z.enum(["Paused", "Resumed"]) }).strict();

export const snapshotCreateSchema = z
  .object({
    snapshot_type: z.enum(["Full", "Diff"]).optional(),
    snapshot_path: z.string().min(1),
    mem_file_path: z.string().min(1),
  })
  .strict();

// mem_backend only: mem_file_path is deprecated and the two are mutually exclusive.
export const snapshotLoadSchema = z
  .object({
    snapshot_path: z.string().min(1),
    mem_backend: z.object({ backend_type: z.enum(["File", "Uffd"]), backend_path: z.string().min(1) }).strict(),
    track_dirty_pages: z.boolean().optional(),
    resume_vm: z.boolean().optional(),
    network_overrides: z.array(z.object({ iface_id: resourceId, host_dev_name: z.string().min(1).max(15) }).strict()).optional(),
    vsock_override: z
      .object({ uds_path: z.string().min(1) })
      .strict()
      .optional(),
    clock_realtime: z.boolean().optional(),
  })
  .strict();

export const partialDriveSchema = z.object({ drive_id: resourceId, path_on_host: z.string().min(1) }).strict();

function checked<T>(schema: z.ZodType<T>, what: string, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const detail = r.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
    throw new BangerError("VMM_FAILED", `invalid firecracker request ${what}: ${detail}`, { hint: "this is a bug in the snapshot caller's paths or TAP name" });
  }
  return r.data;
}

export function vmStateRequest(state: "Paused" | "Resumed"): ApiRequest {
  return { method: "PATCH", path: "/vm", body: checked(vmStateSchema, "PATCH /vm", { state }) };
}

export function snapshotCreateRequest(statePath: string, memPath: string): ApiRequest {
  return {
    method: "PUT",
    path: "/snapshot/create",
    body: checked(snapshotCreateSchema, "PUT /snapshot/create", { snapshot_type: "Full", snapshot_path: statePath, mem_file_path: memPath }),
  };
}

export interface LoadTarget {
  statePath: string;
  memPath: string;
  /** The restored VM's TAP, replacing the one recorded for eth0. */
  tap: string;
  /** The restored VM's vsock socket, replacing the recorded one (which belongs to the source VM's directory). */
  vsockPath: string;
}

/** Loaded paused (resume_vm: false): the drives must be repointed before the guest runs. */
export function snapshotLoadRequest(t: LoadTarget): ApiRequest {
  return {
    method: "PUT",
    path: "/snapshot/load",
    body: checked(snapshotLoadSchema, "PUT /snapshot/load", {
      snapshot_path: t.statePath,
      mem_backend: { backend_type: "File", backend_path: t.memPath },
      network_overrides: [{ iface_id: "eth0", host_dev_name: t.tap }],
      vsock_override: { uds_path: t.vsockPath },
      resume_vm: false,
    }),
  };
}

export function repointDriveRequest(driveId: "rootfs" | "work", path: string): ApiRequest {
  return {
    method: "PATCH",
    path: `/drives/${driveId}`,
    body: checked(partialDriveSchema, `PATCH /drives/${driveId}`, { drive_id: driveId, path_on_host: path }),
  };
}
