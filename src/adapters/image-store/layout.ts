import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BangerError } from "../../domain/errors.js";
import type { LocalBootSet } from "../../ports/image-store.js";
import { ANNOTATION_DIGEST, ANNOTATION_REF, MEDIA, ociManifest, sha256Digest } from "./artifact.js";
import { sourceFailed, type Http } from "./http.js";
import { badReference } from "./registry.js";

/**
 * An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`): written to a directory by push,
 * read from a directory or from any static HTTP(S) server that serves one. The index names each manifest by
 * tag (`org.opencontainers.image.ref.name`) and by banger digest (`dev.banger.image.digest`).
 */
export interface LayoutRef {
  /** A directory path, or an http(s) URL ending in `/`. */
  base: string;
  remote: boolean;
  tag?: string;
  display: string;
}

interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}
interface Index {
  schemaVersion: 2;
  mediaType: string;
  manifests: IndexEntry[];
}

const LOOPBACK_URL = /^http:\/\/(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?\//;

/** `https://host/path/[#tag]`, `http://` only to loopback or with insecure, `/abs/dir[#tag]` or `file:///abs/dir[#tag]`. */
export function parseLayoutRef(ref: string, insecure = false): LayoutRef {
  const hash = ref.indexOf("#");
  const tag = hash >= 0 ? ref.slice(hash + 1) : undefined;
  let base = hash >= 0 ? ref.slice(0, hash) : ref;
  if (tag !== undefined && !/^[\w][\w.-]{0,127}$/.test(tag)) throw badReference(ref, `tag ${tag} is not valid`);
  if (/^https?:\/\//.test(base)) {
    if (base.startsWith("http://") && !insecure && !LOOPBACK_URL.test(base.endsWith("/") ? base : `${base}/`)) {
      throw badReference(ref, "plain HTTP is allowed only to a loopback host; use https://, or pass --insecure (images.insecure) if you trust the network");
    }
    if (!base.endsWith("/")) base += "/";
    return { base, remote: true, tag, display: ref };
  }
  if (base.startsWith("file://")) base = base.slice("file://".length);
  if (!base.startsWith("/")) throw badReference(ref, "a layout directory must be an absolute path");
  return { base, remote: false, tag, display: ref };
}

export class Layout {
  constructor(
    private readonly http: Http,
    readonly ref: LayoutRef,
  ) {}

  blobLocation(digest: string): string {
    const rel = `blobs/${digest.replace(":", "/")}`;
    return this.ref.remote ? new URL(rel, this.ref.base).toString() : join(this.ref.base, rel);
  }

  async read(rel: string, signal: AbortSignal): Promise<Buffer> {
    if (!this.ref.remote) {
      return readFile(join(this.ref.base, rel)).catch((e: NodeJS.ErrnoException) => {
        throw e.code === "ENOENT"
          ? new BangerError("IMAGE_NOT_FOUND", `${this.ref.display}: no ${rel}`, { hint: "push an image there with `banger image push <image> <dir>`" })
          : sourceFailed(`${this.ref.display}: cannot read ${rel}: ${e.message}`);
      });
    }
    const url = new URL(rel, this.ref.base).toString();
    const { res, bytes } = await this.http.fetchBytes("GET", url, { signal });
    if (res.status === 404)
      throw new BangerError("IMAGE_NOT_FOUND", `${url}: not found`, {
        hint: "check the URL: it must point at an OCI image layout (the directory holding index.json)",
      });
    if (res.status !== 200) throw sourceFailed(`GET ${url}: HTTP ${res.status}`);
    return bytes;
  }

  /** The manifest picked by banger digest, else by tag, else the only one; its bytes checked against the index. */
  async manifest(want: string | undefined, signal: AbortSignal): Promise<Buffer> {
    const index = parseIndex(await this.read("index.json", signal), this.ref.display);
    const pick = want
      ? index.manifests.find((m) => m.annotations?.[ANNOTATION_DIGEST] === want)
      : this.ref.tag
        ? index.manifests.find((m) => m.annotations?.[ANNOTATION_REF] === this.ref.tag)
        : index.manifests.length === 1
          ? index.manifests[0]
          : undefined;
    if (!pick) {
      const tags = index.manifests.map((m) => m.annotations?.[ANNOTATION_REF]).filter(Boolean);
      throw new BangerError("IMAGE_NOT_FOUND", `${this.ref.display}: no image ${want ?? this.ref.tag ?? "(several here: name one)"}`, {
        hint: tags.length ? `tags here: ${tags.join(", ")} (add #<tag> to the source)` : "push an image there first",
      });
    }
    const bytes = await this.read(`blobs/${pick.digest.replace(":", "/")}`, signal);
    if (sha256Digest(bytes) !== pick.digest) {
      throw new BangerError("IMAGE_DIGEST_MISMATCH", `${this.ref.display}: manifest ${pick.digest} hashes to ${sha256Digest(bytes)}`, {
        hint: "the layout is damaged or tampered; push the image again",
      });
    }
    return bytes;
  }

  /** Writes blobs first (each by temp file and rename), then the manifest, then index.json, so a reader never sees a dangling entry. */
  async push(set: LocalBootSet): Promise<{ reference: string; manifestDigest: string }> {
    if (this.ref.remote) throw badReference(this.ref.display, "push writes a layout directory; serve that directory over HTTP(S) for pulls");
    const dir = this.ref.base;
    await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
    await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    const put = async (digest: string, size: number, write: (tmp: string) => Promise<void>) => {
      const dst = this.blobLocation(digest);
      if ((await stat(dst).catch(() => undefined))?.size === size) return;
      const tmp = `${dst}.tmp-${process.pid}`;
      try {
        await write(tmp);
        await rename(tmp, dst);
      } finally {
        await rm(tmp, { force: true });
      }
    };
    for (const f of set.files) await put(`sha256:${f.sha256}`, f.size, (tmp) => copyFile(f.path, tmp));
    const config = Buffer.from(set.manifestText);
    await put(set.digest, config.length, (tmp) => writeFile(tmp, config));
    const manifest = Buffer.from(ociManifest(set));
    const manifestDigest = sha256Digest(manifest);
    await put(manifestDigest, manifest.length, (tmp) => writeFile(tmp, manifest));
    const tag = this.ref.tag ?? set.name;
    const old = await readFile(join(dir, "index.json")).then(
      (b) => parseIndex(b, this.ref.display),
      () => undefined,
    );
    const manifests = (old?.manifests ?? []).filter((m) => m.annotations?.[ANNOTATION_REF] !== tag);
    manifests.push({
      mediaType: MEDIA.manifest,
      digest: manifestDigest,
      size: manifest.length,
      artifactType: MEDIA.artifact,
      annotations: { [ANNOTATION_REF]: tag, [ANNOTATION_DIGEST]: set.digest },
    });
    const index: Index = { schemaVersion: 2, mediaType: MEDIA.index, manifests };
    const tmp = join(dir, `index.json.tmp-${process.pid}`);
    await writeFile(tmp, JSON.stringify(index, null, 2));
    await rename(tmp, join(dir, "index.json"));
    return { reference: `${dir}#${tag}`, manifestDigest };
  }
}

function parseIndex(bytes: Buffer, display: string): Index {
  try {
    const v = JSON.parse(bytes.toString("utf8")) as Index;
    if (Array.isArray(v.manifests)) return v;
  } catch {
    // reported below
  }
  throw new BangerError("INVALID_IMAGE_MANIFEST", `${display}: index.json is not an OCI image index`, {
    hint: "point the source at an OCI image layout written by `banger image push`",
  });
}
