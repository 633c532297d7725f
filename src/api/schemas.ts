import { z } from "zod";

// Absolute, outside the state dir, no symlink into it: checked where the file is opened (app/image-sources.ts).
const absPath = z.string().min(1).max(4096);

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
    snapshot: z.boolean().optional(),
  })
  .strict();

export const promoteBody = z.object({ alias: z.string() }).strict();

const ipv4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, "expected an IPv4 address");

export const forwardBody = z
  .object({
    hostAddress: ipv4.default("127.0.0.1"),
    hostPort: z.number().int().min(1).max(65535),
    guestPort: z.number().int().min(1).max(65535),
  })
  .strict();

export const createVmBody = z
  .object({
    image: z.string().min(1),
    name: z.string().optional(),
    nat: z.boolean().optional(),
    vcpus: z.number().int().min(1).max(32).optional(),
    memoryMib: z.number().int().min(128).max(262144).optional(),
    workDiskGib: z.number().int().min(1).max(2048).optional(),
    noWait: z.boolean().optional(),
    peers: z.array(z.string().min(1).max(64)).max(64).optional(),
    forwards: z.array(forwardBody).max(64).optional(),
    // One OpenSSH public key line; it goes into the guest's authorized_keys as is.
    sshPublicKey: z
      .string()
      .max(16384)
      .regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*( [^\n\r]*)?\n?$/, "expected one OpenSSH public key line")
      .optional(),
    cold: z.boolean().optional(),
  })
  .strict();

export const startVmBody = z.object({ noWait: z.boolean().optional() }).strict();
