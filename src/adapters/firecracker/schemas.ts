import { z } from "zod";
import { BangerError } from "../../domain/errors.js";
import type { VmmSpec } from "../../ports/vmm.js";

// Request bodies for the subset of the Firecracker API that banger uses.
// Firecracker deserialises with serde's deny_unknown_fields, so every object
// is strict: a stray key here would be a 400 there.

/** Resource ids in URL paths (drive_id, iface_id): non-empty, alphanumerics and '_' only. */
export const resourceId = z.string().regex(/^[\p{L}\p{N}_]+$/u, "ids may only contain alphanumerics and underscores");

export const machineConfigSchema = z
  .object({
    vcpu_count: z.number().int().min(1).max(32),
    mem_size_mib: z.number().int().min(1),
    smt: z.boolean().optional(),
    track_dirty_pages: z.boolean().optional(),
  })
  .strict();

/** x86 kernels get at most 2048 bytes of command line from Firecracker. */
export const MAX_BOOT_ARGS = 2047;

export const bootSourceSchema = z
  .object({
    kernel_image_path: z.string().min(1),
    initrd_path: z.string().min(1).optional(),
    boot_args: z.string().max(MAX_BOOT_ARGS).optional(),
  })
  .strict();

export const driveSchema = z
  .object({
    drive_id: resourceId,
    path_on_host: z.string().min(1),
    is_root_device: z.boolean(),
    is_read_only: z.boolean(),
    cache_type: z.enum(["Unsafe", "Writeback"]).optional(),
    io_engine: z.enum(["Sync", "Async"]).optional(),
  })
  .strict();

export const networkInterfaceSchema = z
  .object({
    iface_id: resourceId,
    host_dev_name: z.string().min(1).max(15),
    guest_mac: z
      .string()
      .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, "expected a MAC like 02:fc:00:00:00:02")
      .optional(),
  })
  .strict();

export const vsockSchema = z
  .object({
    // CIDs 0-2 are reserved (hypervisor, local, host).
    guest_cid: z.number().int().min(3).max(0xffff_ffff),
    uds_path: z.string().min(1),
  })
  .strict();

export const loggerSchema = z
  .object({
    log_path: z.string().min(1),
    level: z.enum(["Error", "Warning", "Info", "Debug", "Trace", "Off"]).optional(),
    show_level: z.boolean().optional(),
    show_log_origin: z.boolean().optional(),
  })
  .strict();

export const actionSchema = z.object({ action_type: z.enum(["InstanceStart", "SendCtrlAltDel", "FlushMetrics"]) }).strict();

export interface ApiRequest {
  method: "PUT" | "PATCH";
  path: string;
  body: Record<string, unknown>;
}

/** Files the driver keeps next to the API socket in the VM directory. */
export interface FirecrackerPaths {
  apiSocket: string;
  vsockSocket: string;
  consoleLog: string;
  /** Firecracker's own log (the logger resource); must exist before PUT /logger. */
  vmmLog: string;
}

function checked<T>(schema: z.ZodType<T>, what: string, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const detail = r.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
    throw new BangerError("VMM_FAILED", `invalid firecracker request ${what}: ${detail}`, {
      hint: "check the VM's vcpus, memory, paths and MAC; this is usually a bug in the caller's spec",
    });
  }
  return r.data;
}

/** pci=off keeps the guest from probing a PCI bus Firecracker does not emulate. */
export function firecrackerBootArgs(bootArgs: string): string {
  return /(^|\s)pci=off(\s|$)/.test(bootArgs) ? bootArgs : `${bootArgs} pci=off`.trim();
}

/**
 * The pre-boot configuration requests, in the order they are sent. Every body
 * is validated before anything goes over the socket, so a bad spec fails with
 * the offending field named instead of a half-configured VMM.
 */
export function configureRequests(spec: VmmSpec, paths: FirecrackerPaths): ApiRequest[] {
  const reqs: ApiRequest[] = [];
  const put = <T extends Record<string, unknown>>(path: string, schema: z.ZodType<T>, body: unknown): void => {
    reqs.push({ method: "PUT", path, body: checked(schema, `PUT ${path}`, body) });
  };
  put("/logger", loggerSchema, { log_path: paths.vmmLog, level: "Warning", show_level: true });
  // No /metrics: Firecracker appends a multi-KB JSON record every minute, which
  // grows without bound for long-lived sandboxes and nothing here reads it.
  put("/machine-config", machineConfigSchema, { vcpu_count: spec.vcpus, mem_size_mib: spec.memoryMib, smt: false });
  put("/boot-source", bootSourceSchema, {
    kernel_image_path: spec.kernel,
    ...(spec.initrd ? { initrd_path: spec.initrd } : {}),
    boot_args: firecrackerBootArgs(spec.bootArgs),
  });
  put("/drives/rootfs", driveSchema, { drive_id: "rootfs", path_on_host: spec.rootfs, is_root_device: true, is_read_only: false });
  put("/drives/work", driveSchema, { drive_id: "work", path_on_host: spec.workDisk, is_root_device: false, is_read_only: false });
  put("/network-interfaces/eth0", networkInterfaceSchema, { iface_id: "eth0", host_dev_name: spec.tap, guest_mac: spec.mac });
  put("/vsock", vsockSchema, { guest_cid: spec.vsockCid, uds_path: paths.vsockSocket });
  return reqs;
}

export function actionRequest(action: z.infer<typeof actionSchema>["action_type"]): ApiRequest {
  return { method: "PUT", path: "/actions", body: checked(actionSchema, "PUT /actions", { action_type: action }) };
}

/** Firecracker's --id: alphanumerics and '-', 1 to 64 characters. */
export function instanceId(vmId: string): string {
  const id = vmId.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 64);
  return id || "banger-vm";
}
