import { copyFile, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { ArtifactRole } from "../../domain/types.js";
import type { ImageStore, LocalBootSet, RemoteImage, TransferOptions } from "../../ports/image-store.js";
import { TITLES, digestTag, readOciManifest, remoteImage } from "./artifact.js";
import { downloadBlob, keepVerified } from "./download.js";
import { DEFAULT_TIMEOUTS, Http, sourceFailed, transferError, type HttpTimeouts } from "./http.js";
import { Layout, parseLayoutRef } from "./layout.js";
import { Registry, parseOciRef } from "./registry.js";

export interface OciImageStoreOptions {
  /** Where partial downloads wait to be resumed (`<state_dir>/pulls`). */
  partialsDir: string;
  /** Blobs above this go up in PATCH chunks; default 64 MiB. */
  chunkBytes?: number;
  timeouts?: HttpTimeouts;
  /** Transfers of one blob within one fetch (each resuming the last); default 4. */
  attempts?: number;
}

/** The ImageStore port on OCI: a distribution registry (`oci://`) or an OCI image layout (directory, HTTP(S)). */
export class OciImageStore implements ImageStore {
  private readonly http: Http;
  /** One transfer per blob at a time: two pulls sharing a kernel must not write one partial file together. */
  private readonly blobLocks = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: OciImageStoreOptions) {
    this.http = new Http(opts.timeouts ?? DEFAULT_TIMEOUTS);
  }

  private open(source: string, insecure?: boolean): { registry: Registry } | { layout: Layout } {
    if (source.startsWith("oci://")) return { registry: new Registry(this.http, parseOciRef(source, insecure), this.opts.chunkBytes ?? 64 * 1024 * 1024) };
    return { layout: new Layout(this.http, parseLayoutRef(source, insecure)) };
  }

  async resolve(source: string, opts: TransferOptions & { digest?: string }): Promise<RemoteImage> {
    const at = this.open(source, opts.insecure);
    if ("registry" in at) {
      const reg = at.registry;
      const manifest = readOciManifest(
        await reg.manifest(opts.digest ? digestTag(opts.digest) : (reg.ref.tag ?? "latest"), opts.signal),
        reg.ref.display,
        opts.digest,
      );
      const { res, bytes } = await this.http.fetchBytes("GET", reg.blobUrl(manifest.configDigest), { signal: opts.signal });
      if (res.status !== 200) throw sourceFailed(`${reg.ref.display}: config blob ${manifest.configDigest}: HTTP ${res.status}`);
      return remoteImage(reg.ref.display, manifest, bytes);
    }
    const lay = at.layout;
    const manifest = readOciManifest(await lay.manifest(opts.digest, opts.signal), lay.ref.display, opts.digest);
    const config = await lay.read(`blobs/${manifest.configDigest.replace(":", "/")}`, opts.signal);
    return remoteImage(lay.ref.display, manifest, config);
  }

  async fetch(
    remote: RemoteImage,
    dir: string,
    opts: TransferOptions & { onProgress?: (role: ArtifactRole, bytes: number) => void },
  ): Promise<Map<ArtifactRole, string>> {
    const at = this.open(remote.source, opts.insecure);
    await mkdir(this.opts.partialsDir, { recursive: true });
    const out = new Map<ArtifactRole, string>();
    const partials: string[] = [];
    try {
      for (const f of remote.files) {
        const partial = join(this.opts.partialsDir, `${f.digest.replace("sha256:", "")}.partial`);
        const dest = join(dir, TITLES[f.role]);
        partials.push(partial);
        await this.oneAtATime(f.digest, async () => {
          if ("registry" in at) {
            await downloadBlob(this.http, {
              url: at.registry.blobUrl(f.digest),
              digest: f.digest,
              size: f.size,
              partial,
              dest,
              signal: opts.signal,
              attempts: this.opts.attempts,
              onProgress: (n) => opts.onProgress?.(f.role, n),
            });
          } else if (at.layout.ref.remote) {
            await downloadBlob(this.http, {
              url: at.layout.blobLocation(f.digest),
              digest: f.digest,
              size: f.size,
              partial,
              dest,
              signal: opts.signal,
              attempts: this.opts.attempts,
            });
          } else {
            await copyFile(at.layout.blobLocation(f.digest), partial).catch((e: Error) => {
              throw sourceFailed(`${remote.source}: cannot read blob ${f.digest}: ${e.message}`, "the layout is incomplete: push the image there again");
            });
            await keepVerified(partial, dest, f.digest, f.size);
          }
        });
        out.set(f.role, dest);
      }
      return out;
    } catch (e) {
      // A cancelled pull leaves nothing; a failed transfer keeps its partial for the next pull to resume.
      if (opts.signal.aborted) await Promise.all(partials.map((p) => rm(p, { force: true })));
      throw transferError(e, `pull ${remote.digest} from ${remote.source}`, opts.signal);
    }
  }

  private async oneAtATime<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.blobLocks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.blobLocks.set(key, settled);
    try {
      return await run;
    } finally {
      if (this.blobLocks.get(key) === settled) this.blobLocks.delete(key);
    }
  }

  async push(set: LocalBootSet, dest: string, opts: TransferOptions): Promise<{ reference: string; manifestDigest: string }> {
    const at = this.open(dest, opts.insecure);
    try {
      return "registry" in at ? await at.registry.push(set, opts.signal) : await at.layout.push(set);
    } catch (e) {
      throw transferError(e, `push ${set.name} to ${dest}`, opts.signal);
    }
  }

  close(): Promise<void> {
    return this.http.close();
  }
}
