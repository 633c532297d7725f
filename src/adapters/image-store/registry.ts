import { createReadStream } from "node:fs";
import { BangerError } from "../../domain/errors.js";
import type { LocalBootSet } from "../../ports/image-store.js";
import { digestMismatch } from "./download.js";
import { MEDIA, digestTag, ociManifest, sha256Digest } from "./artifact.js";
import { header, sourceFailed, type Http, type HttpResponse } from "./http.js";

export interface OciRef {
  base: string;
  host: string;
  repo: string;
  tag?: string;
  display: string;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$/;
const REPO = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

export function badReference(ref: string, problem: string): BangerError {
  return new BangerError("BAD_REQUEST", `${ref}: ${problem}`, {
    hint: "write a registry reference as oci://host[:port]/repo[:tag] (e.g. oci://127.0.0.1:5000/banger/debian:12), a layout as https://host/path/ or an absolute directory",
  });
}

/**
 * `oci://host[:port]/repo[:tag]`. HTTPS, except to a loopback host or with `insecure`: a registry on
 * another machine over plain HTTP would let anyone on the path swap what is pulled (digests still catch a
 * swapped blob, but not a swapped tag).
 */
export function parseOciRef(ref: string, insecure = false): OciRef {
  const m = /^oci:\/\/([^/]+)\/(.+)$/.exec(ref);
  if (!m) throw badReference(ref, "not an oci:// reference");
  const host = m[1]!;
  let repo = m[2]!;
  let tag: string | undefined;
  const colon = repo.lastIndexOf(":");
  if (colon > repo.lastIndexOf("/")) {
    tag = repo.slice(colon + 1);
    repo = repo.slice(0, colon);
    if (!TAG.test(tag)) throw badReference(ref, `tag ${tag} is not valid (letters, digits, _ . -; at most 128)`);
  }
  if (!REPO.test(repo)) throw badReference(ref, `repository ${repo} is not valid (lowercase path components)`);
  const scheme = LOOPBACK.test(host) || insecure ? "http" : "https";
  return { base: `${scheme}://${host}/v2/${repo}`, host, repo, tag, display: `oci://${host}/${repo}${tag ? `:${tag}` : ""}` };
}

async function failure(res: HttpResponse, what: string): Promise<BangerError> {
  return failed(res.status, await res.body.text().catch(() => ""), what);
}

function failed(status: number, body: string, what: string): BangerError {
  const text = body.slice(0, 400);
  const hint =
    status === 401 || status === 403
      ? "the registry wants credentials; banger pushes and pulls anonymously, so use a registry (or repository) open to this host"
      : status === 404
        ? "the repository or tag does not exist there"
        : "check the registry's log";
  return sourceFailed(`${what}: HTTP ${status} ${text}`, hint);
}

/** The OCI distribution API, the parts an artifact push and pull use. */
export class Registry {
  constructor(
    private readonly http: Http,
    readonly ref: OciRef,
    private readonly chunkBytes: number,
  ) {}

  blobUrl(digest: string): string {
    return `${this.ref.base}/blobs/${digest}`;
  }

  async manifest(reference: string, signal: AbortSignal): Promise<Buffer> {
    const url = `${this.ref.base}/manifests/${reference}`;
    const { res, bytes } = await this.http.fetchBytes("GET", url, { signal, headers: { accept: MEDIA.manifest } });
    if (res.status === 404) {
      throw new BangerError("IMAGE_NOT_FOUND", `${this.ref.display}: no manifest ${reference}`, {
        hint: "push the image there with `banger image push`, or check the tag or digest",
      });
    }
    if (res.status !== 200) throw failed(res.status, bytes.toString(), `GET ${url}`);
    const said = header(res, "docker-content-digest");
    if (said && said !== sha256Digest(bytes)) throw digestMismatch(`${url}: manifest`, said, sha256Digest(bytes));
    return bytes;
  }

  private async hasBlob(digest: string, signal: AbortSignal): Promise<boolean> {
    const res = await this.http.call("HEAD", this.blobUrl(digest), { signal, whole: true });
    await res.body.dump();
    return res.status === 200;
  }

  private location(res: HttpResponse, from: string): string {
    const loc = header(res, "location");
    if (!loc) throw sourceFailed(`${from}: the registry answered ${res.status} without a Location`);
    return new URL(loc, from).toString();
  }

  /** Monolithic PUT for a blob up to one chunk; PATCH chunks (Content-Range) then a closing PUT for larger ones. */
  async uploadBlob(src: { path: string } | { bytes: Buffer }, digest: string, size: number, signal: AbortSignal): Promise<void> {
    if (await this.hasBlob(digest, signal)) return;
    const start = `${this.ref.base}/blobs/uploads/`;
    const opened = await this.http.call("POST", start, { signal, whole: true, headers: { "content-length": "0" } });
    await opened.body.dump();
    if (opened.status !== 202) throw await failure(opened, `POST ${start}`);
    let at = this.location(opened, start);
    const body = (from: number, to: number) => ("bytes" in src ? src.bytes.subarray(from, to + 1) : createReadStream(src.path, { start: from, end: to }));
    if (size > this.chunkBytes) {
      for (let from = 0; from < size; from += this.chunkBytes) {
        const to = Math.min(size, from + this.chunkBytes) - 1;
        const res = await this.http.call("PATCH", at, {
          signal,
          body: body(from, to),
          headers: { "content-type": "application/octet-stream", "content-length": String(to - from + 1), "content-range": `${from}-${to}` },
        });
        await res.body.dump();
        if (res.status !== 202) throw await failure(res, `PATCH ${at}`);
        at = this.location(res, at);
      }
    }
    const done = new URL(at);
    done.searchParams.set("digest", digest);
    const whole = size <= this.chunkBytes;
    const res = await this.http.call("PUT", done.toString(), {
      signal,
      body: whole ? body(0, size - 1) : undefined,
      headers: { "content-type": "application/octet-stream", "content-length": String(whole ? size : 0) },
    });
    if (res.status !== 201) throw await failure(res, `PUT ${done.pathname}`);
    await res.body.dump();
  }

  async putManifest(reference: string, bytes: Buffer, signal: AbortSignal): Promise<string> {
    const url = `${this.ref.base}/manifests/${reference}`;
    const res = await this.http.call("PUT", url, { signal, whole: true, body: bytes, headers: { "content-type": MEDIA.manifest } });
    if (res.status !== 201) throw await failure(res, `PUT ${url}`);
    await res.body.dump();
    return sha256Digest(bytes);
  }

  /** Blobs first (config last but one), then the manifest under its tag and under `sha256-<banger hex>`. */
  async push(set: LocalBootSet, signal: AbortSignal): Promise<{ reference: string; manifestDigest: string }> {
    for (const f of set.files) await this.uploadBlob({ path: f.path }, `sha256:${f.sha256}`, f.size, signal);
    const config = Buffer.from(set.manifestText);
    await this.uploadBlob({ bytes: config }, set.digest, config.length, signal);
    const manifest = Buffer.from(ociManifest(set));
    const tag = this.ref.tag ?? set.name;
    const manifestDigest = await this.putManifest(tag, manifest, signal);
    await this.putManifest(digestTag(set.digest), manifest, signal);
    return { reference: `oci://${this.ref.host}/${this.ref.repo}:${tag}`, manifestDigest };
  }
}
