import type { ArtifactRole } from "../domain/types.js";

/** One file of a remote boot set: its role and the blob that holds it (`sha256:<hex>` of the file). */
export interface RemoteFile {
  role: ArtifactRole;
  digest: string;
  size: number;
}

/** A banger image found at a source, its manifest and config already fetched and verified. */
export interface RemoteImage {
  /** The banger digest: sha256 of `manifestText`, which is also the OCI config blob. */
  digest: string;
  /** The canonical boot-set manifest (domain/image-digest.ts), exactly the bytes that were verified. */
  manifestText: string;
  files: RemoteFile[];
  /** The name it was pushed under (annotation), when the source says. */
  name?: string;
  /** Where it was found, for the record (`pulledFrom`). */
  source: string;
}

/** A boot set to publish: the local files with their recorded checksums. */
export interface LocalBootSet {
  digest: string;
  manifestText: string;
  name: string;
  files: { role: ArtifactRole; path: string; sha256: string; size: number }[];
}

export interface TransferOptions {
  signal: AbortSignal;
  /** Plain HTTP to a host that is not loopback. */
  insecure?: boolean;
}

/**
 * Content-addressed images kept elsewhere: an OCI registry (`oci://host[:port]/repo[:tag]`) or an OCI
 * image layout (a directory, or the same served over `https://`). Every byte is checked against its
 * digest before it is handed back; failures are BangerErrors (IMAGE_DIGEST_MISMATCH, IMAGE_SOURCE_FAILED,
 * INVALID_IMAGE_MANIFEST, CANCELLED, TIMEOUT).
 */
export interface ImageStore {
  /** Find the image at `source` (its tag, or the one whose banger digest is `digest`); reads and checks manifest and config. */
  resolve(source: string, opts: TransferOptions & { digest?: string }): Promise<RemoteImage>;
  /**
   * Download every file into `dir` (one file per role, named by role), each verified against its digest.
   * Interrupted transfers continue from their partial file (HTTP Range), within this call and in a later one;
   * a cancelled call removes its partials.
   */
  fetch(
    remote: RemoteImage,
    dir: string,
    opts: TransferOptions & { onProgress?: (role: ArtifactRole, bytes: number) => void },
  ): Promise<Map<ArtifactRole, string>>;
  /** Publish a boot set at `dest`; answers the reference written and the OCI manifest's digest. */
  push(set: LocalBootSet, dest: string, opts: TransferOptions): Promise<{ reference: string; manifestDigest: string }>;
}
