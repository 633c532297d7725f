import { z } from "zod";

const absPath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith("/"), "must be an absolute path");

export const serviceSchema = z
  .object({
    name: z.string().min(1).max(64),
    port: z.number().int().min(1).max(65535),
    timeoutMs: z.number().int().positive().optional(),
  })
  .strict();

export const registerImageBody = z
  .object({
    name: z.string(),
    kernel: absPath,
    initrd: absPath.optional(),
    rootfs: absPath,
    workSeed: absPath.optional(),
    bootArgs: z.string().max(2048).optional(),
    os: z.string().min(1).max(64).optional(),
    services: z.array(serviceSchema).max(32).optional(),
    defaultVcpus: z.number().int().min(1).max(32).optional(),
    defaultMemoryMib: z.number().int().min(128).optional(),
    defaultWorkDiskGib: z.number().int().min(1).optional(),
  })
  .strict();

export const promoteBody = z.object({ alias: z.string() }).strict();

export const createVmBody = z
  .object({
    image: z.string().min(1),
    name: z.string().optional(),
    nat: z.boolean().optional(),
    vcpus: z.number().int().min(1).max(32).optional(),
    memoryMib: z.number().int().min(128).max(262144).optional(),
    workDiskGib: z.number().int().min(1).max(2048).optional(),
    noWait: z.boolean().optional(),
    cold: z.boolean().optional(),
  })
  .strict();

export const startVmBody = z.object({ noWait: z.boolean().optional() }).strict();
