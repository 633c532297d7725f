import { createHash } from "node:crypto";
import { BangerError } from "../../domain/errors.js";
import { parseManifest, ROLES } from "../../domain/image-digest.js";
import type { ArtifactRole } from "../../domain/types.js";
import type { LocalBootSet, RemoteFile, RemoteImage } from "../../ports/image-store.js";
import { digestMismatch } from "./download.js";

/** How a banger image is laid out as an OCI artifact (docs/images.md, "Images by digest"). */
export const MEDIA = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  artifact: "application/vnd.banger.image.v1",
  config: "application/vnd.banger.image.config.v1+json",
} as const;
export const ANNOTATION_DIGEST = "dev.banger.image.digest";
export const ANNOTATION_NAME = "dev.banger.image.name";
export const ANNOTATION_TITLE = "org.opencontainers.image.title";
export const ANNOTATION_REF = "org.opencontainers.image.ref.name";

/** Layers are the files as they are: a layer's digest is the sha256 already recorded for the file. */
export const layerMediaType = (role: ArtifactRole) => `application/vnd.banger.image.${role.replace("_", "-")}.v1`;
export const TITLES: Record<ArtifactRole, string> = { kernel: "vmlinux", initrd: "initramfs", rootfs: "rootfs.ext4", work_seed: "work-seed.ext4" };

export const sha256Digest = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
/** The tag that makes an image addressable by its banger digest in a registry: `sha256-<hex>`. */
export const digestTag = (digest: string) => digest.replace(":", "-");

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The OCI image manifest of a boot set. Deterministic: pushing the same image twice writes the same bytes. */
export function ociManifest(set: LocalBootSet): string {
  const files = [...set.files].sort((a, b) => ROLES.indexOf(a.role) - ROLES.indexOf(b.role));
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    artifactType: MEDIA.artifact,
    config: { mediaType: MEDIA.config, digest: set.digest, size: Buffer.byteLength(set.manifestText) },
    layers: files.map((f) => ({
      mediaType: layerMediaType(f.role),
      digest: `sha256:${f.sha256}`,
      size: f.size,
      annotations: { [ANNOTATION_TITLE]: TITLES[f.role] },
    })),
    annotations: { [ANNOTATION_DIGEST]: set.digest, [ANNOTATION_NAME]: set.name },
  });
}

function invalid(source: string, problem: string): BangerError {
  return new BangerError("INVALID_IMAGE_MANIFEST", `${source}: ${problem}`, {
    hint: "the source does not hold a banger image (push one with `banger image push`), or it is damaged",
  });
}

/** The OCI manifest's own checks: a banger artifact, and (when asked for one) the banger digest wanted. */
export function readOciManifest(
  bytes: Buffer,
  source: string,
  want?: string,
): { configDigest: string; configSize: number; layers: Descriptor[]; name?: string } {
  let m: { mediaType?: string; artifactType?: string; config?: Descriptor; layers?: Descriptor[]; annotations?: Record<string, string> };
  try {
    m = JSON.parse(bytes.toString("utf8")) as typeof m;
  } catch {
    throw invalid(source, "the manifest is not JSON");
  }
  if (m.mediaType !== MEDIA.manifest || m.config?.mediaType !== MEDIA.config || !Array.isArray(m.layers)) {
    throw invalid(source, `not a banger image (manifest ${m.mediaType ?? "?"}, config ${m.config?.mediaType ?? "?"})`);
  }
  const configDigest = m.config.digest;
  if (m.annotations?.[ANNOTATION_DIGEST] !== undefined && m.annotations[ANNOTATION_DIGEST] !== configDigest) {
    throw digestMismatch(`${source}: annotation ${ANNOTATION_DIGEST}`, configDigest, m.annotations[ANNOTATION_DIGEST]);
  }
  if (want !== undefined && configDigest !== want) throw digestMismatch(`${source}: image`, want, configDigest);
  return { configDigest, configSize: m.config.size, layers: m.layers, name: m.annotations?.[ANNOTATION_NAME] };
}

/**
 * The config blob (the canonical boot-set manifest) checked against its digest, and the layers against it:
 * one layer per file, each with the file's sha256 and size. What passes is what fetch downloads.
 */
export function remoteImage(source: string, manifest: ReturnType<typeof readOciManifest>, config: Buffer): RemoteImage {
  const got = sha256Digest(config);
  if (got !== manifest.configDigest) throw digestMismatch(`${source}: config blob`, manifest.configDigest, got);
  const text = config.toString("utf8");
  const boot = parseManifest(text);
  const files: RemoteFile[] = boot.files.map((f) => {
    const layer = manifest.layers.find((l) => l.mediaType === layerMediaType(f.role));
    if (!layer) throw invalid(source, `no layer for the ${f.role} (${layerMediaType(f.role)})`);
    if (layer.digest !== `sha256:${f.sha256}` || layer.size !== f.size) {
      throw digestMismatch(`${source}: ${f.role} layer`, `sha256:${f.sha256} (${f.size} bytes)`, `${layer.digest} (${layer.size} bytes)`);
    }
    return { role: f.role, digest: layer.digest, size: f.size };
  });
  return { digest: got, manifestText: text, files, source, ...(manifest.name ? { name: manifest.name } : {}) };
}
