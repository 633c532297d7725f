import { BangerError } from "./errors.js";
import type { ArtifactRole, GuestService, Image } from "./types.js";

/**
 * What a boot set is, for its digest: each file's role, size and sha256, and the fields that change how
 * it boots. Names, aliases, defaults and provenance are left out on purpose: the same files booted the
 * same way are the same image on every node, whatever each node calls it.
 */
export interface BootSetManifest {
  schema: typeof MANIFEST_SCHEMA;
  os: string;
  bootArgs: string;
  services: GuestService[];
  files: { role: ArtifactRole; size: number; sha256: string }[];
}

export const MANIFEST_SCHEMA = "banger.image.v1";
export const ROLES: readonly ArtifactRole[] = ["kernel", "initrd", "rootfs", "work_seed"];
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const HEX_RE = /^[0-9a-f]{64}$/;

export function isImageDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

export function manifestOf(img: Pick<Image, "guest" | "bootArgs" | "artifacts">): BootSetManifest {
  // Rows written by early versions may lack guest fields; they hash as absent, never fail.
  const guest: Partial<Image["guest"]> = img.guest ?? {};
  return {
    schema: MANIFEST_SCHEMA,
    os: guest.os ?? "",
    bootArgs: img.bootArgs,
    services: guest.services ?? [],
    files: img.artifacts.map((a) => ({ role: a.role, size: a.sizeBytes, sha256: a.sha256 })),
  };
}

/**
 * The manifest as bytes: keys in one fixed order, files in role order, no whitespace. Every node must
 * produce the same bytes for the same boot set, so nothing here may depend on insertion order.
 */
export function canonicalManifest(m: BootSetManifest): string {
  const files = [...m.files].sort((a, b) => ROLES.indexOf(a.role) - ROLES.indexOf(b.role));
  return JSON.stringify({
    schema: MANIFEST_SCHEMA,
    os: m.os,
    bootArgs: m.bootArgs,
    services: m.services.map((s) => (s.timeoutMs === undefined ? { name: s.name, port: s.port } : { name: s.name, port: s.port, timeoutMs: s.timeoutMs })),
    files: files.map((f) => ({ role: f.role, size: f.size, sha256: f.sha256 })),
  });
}

/**
 * Hex sha256 of a UTF-8 string. The domain does no hashing of its own (it imports nothing, not even
 * node:crypto): callers pass node:crypto's, so the digest stays a pure function of its inputs.
 */
export type Sha256Hex = (text: string) => string;

export function digestOfManifest(m: BootSetManifest, sha256: Sha256Hex): string {
  return `sha256:${sha256(canonicalManifest(m))}`;
}

/** `sha256:<hex>` over the image's canonical manifest; also the OCI config blob's digest when pushed. */
export function imageDigest(img: Pick<Image, "guest" | "bootArgs" | "artifacts">, sha256: Sha256Hex): string {
  return digestOfManifest(manifestOf(img), sha256);
}

function bad(problem: string): BangerError {
  return new BangerError("INVALID_IMAGE_MANIFEST", `image manifest: ${problem}`, {
    hint: "the source does not hold a banger image (push one with `banger image push`), or it is damaged",
  });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses and checks a manifest that came from elsewhere (a registry's config blob); throws INVALID_IMAGE_MANIFEST. */
export function parseManifest(text: string): BootSetManifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad("is not JSON");
  }
  if (!isObj(v) || v.schema !== MANIFEST_SCHEMA) throw bad(`schema is not ${MANIFEST_SCHEMA}`);
  if (typeof v.os !== "string" || typeof v.bootArgs !== "string") throw bad("os and bootArgs must be strings");
  if (!Array.isArray(v.services) || !Array.isArray(v.files)) throw bad("services and files must be lists");
  const services = v.services.map((s): GuestService => {
    if (!isObj(s) || typeof s.name !== "string" || !Number.isInteger(s.port)) throw bad("a service needs a name and an integer port");
    if (s.timeoutMs !== undefined && !Number.isInteger(s.timeoutMs)) throw bad(`service ${s.name}: timeoutMs must be an integer`);
    return { name: s.name, port: s.port as number, ...(s.timeoutMs !== undefined ? { timeoutMs: s.timeoutMs as number } : {}) };
  });
  const seen = new Set<string>();
  const files = v.files.map((f) => {
    if (!isObj(f) || !ROLES.includes(f.role as ArtifactRole)) throw bad("a file has an unknown role");
    if (seen.has(f.role as string)) throw bad(`role ${String(f.role)} appears twice`);
    seen.add(f.role as string);
    if (!Number.isSafeInteger(f.size) || (f.size as number) <= 0) throw bad(`${String(f.role)}: size must be a positive integer`);
    if (typeof f.sha256 !== "string" || !HEX_RE.test(f.sha256)) throw bad(`${String(f.role)}: sha256 must be 64 lowercase hex digits`);
    return { role: f.role as ArtifactRole, size: f.size as number, sha256: f.sha256 };
  });
  if (!seen.has("kernel") || !seen.has("rootfs")) throw bad("a boot set needs at least a kernel and a rootfs");
  return { schema: MANIFEST_SCHEMA, os: v.os, bootArgs: v.bootArgs, services, files };
}
