import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { BangerError, isCode } from "../domain/errors.js";
import { canonicalManifest, isImageDigest, manifestOf, parseManifest } from "../domain/image-digest.js";
import type { ArtifactRole, Image } from "../domain/types.js";
import type { RemoteImage } from "../ports/image-store.js";
import type { AppConfig, AppDeps } from "./deps.js";
import { imageNotFound, type ImageService } from "./images.js";

export interface StageTime {
  name: string;
  ms: number;
}

export interface PullOptions {
  signal: AbortSignal;
  /** Each stage as it ends (resolve, evict, download, register): what a MicroVM's status reports. */
  onStage?: (s: StageTime) => void;
  /** Plain HTTP to a non-loopback source for this call (images.insecure does it for all). */
  insecure?: boolean;
}

export interface PullInput {
  /** oci://host[:port]/repo[:tag], https://host/layout/[#tag] or a layout directory; unset: the configured sources. */
  source?: string;
  /** `sha256:<hex>` banger digest; with a source, picks that image there; without, searched in images.sources. */
  digest?: string;
  /** Register under this name; default: the name it was pushed under (with the digest's first 12 hex digits if taken). */
  name?: string;
}

export interface PullResult {
  image: Image;
  /** True when an image with that digest was here already: nothing was transferred. */
  present: boolean;
  stages: StageTime[];
}

type Deps = Pick<AppDeps, "store" | "files" | "log" | "imageStore"> & {
  config: Pick<AppConfig, "pullsDir" | "imageStoreMaxBytes" | "imageSources" | "imageInsecure">;
};

const sizeOf = (img: Image) => img.artifacts.reduce((s, a) => s + a.sizeBytes, 0);
const GIB = 1024 ** 3;

/**
 * Images by digest across nodes: pull a boot set from a registry or layout, verified blob by blob and as a
 * whole (its banger digest), registered as a managed image; push one; evict pulled images least recently
 * used first when a pull needs room under images.store_max_gib.
 */
export class ImageDistribution {
  private readonly inflight = new Map<string, Promise<PullResult>>();
  /** Bytes promised to pulls in progress, so two pulls cannot both count the same free room. */
  private reserved = 0;
  private evictions: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly d: Deps,
    private readonly images: ImageService,
  ) {}

  /**
   * The registered image a name, alias or digest stands for, pulling it from images.sources first when
   * it is a digest this node lacks. What the node agent calls before it creates a MicroVM.
   */
  async ensureImage(ref: string, opts: PullOptions): Promise<Image> {
    const local = this.d.store.getImage(ref);
    if (local) {
      this.d.store.touchImage(local.id);
      return local;
    }
    if (!isImageDigest(ref)) throw imageNotFound(ref);
    return (await this.pull({ digest: ref }, opts)).image;
  }

  async pull(input: PullInput, opts: PullOptions): Promise<PullResult> {
    if (input.digest !== undefined && !isImageDigest(input.digest)) {
      throw new BangerError("BAD_REQUEST", `${input.digest} is not an image digest`, {
        field: "digest",
        hint: "write it as sha256:<64 lowercase hex digits>, as `banger image ls` shows it",
      });
    }
    if (!input.source && !input.digest)
      throw new BangerError("BAD_REQUEST", "pull needs a source or a digest", {
        hint: "`banger image pull oci://host/repo:tag` or `banger image pull sha256:<hex>`",
      });
    const stages: StageTime[] = [];
    if (input.digest) {
      const here = this.d.store.getImage(input.digest);
      if (here) {
        this.d.store.touchImage(here.id);
        return { image: here, present: true, stages };
      }
      const running = this.inflight.get(input.digest);
      if (running) return running;
    }
    const work = this.run(input, opts, stages);
    if (input.digest) {
      const key = input.digest;
      this.inflight.set(key, work);
      void work.then(
        () => this.inflight.delete(key),
        () => this.inflight.delete(key),
      );
    }
    return work;
  }

  private async stage<T>(name: string, stages: StageTime[], opts: PullOptions, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      const s = { name, ms: Math.round(performance.now() - t0) };
      stages.push(s);
      opts.onStage?.(s);
      this.d.log.info({ stage: name, ms: s.ms }, "image pull stage");
    }
  }

  private async run(input: PullInput, opts: PullOptions, stages: StageTime[]): Promise<PullResult> {
    const insecure = opts.insecure || this.d.config.imageInsecure;
    const remote = await this.stage("resolve", stages, opts, () => this.resolve(input, insecure, opts.signal));
    const here = this.d.store.getImage(remote.digest);
    if (here) {
      this.d.store.touchImage(here.id);
      return { image: here, present: true, stages };
    }
    const bytes = remote.files.reduce((s, f) => s + f.size, 0);
    await this.stage("evict", stages, opts, () => this.reserve(bytes, remote.digest));
    const dir = join(this.d.config.pullsDir, `set-${randomUUID()}`);
    try {
      await this.d.files.mkdir(dir);
      const files = await this.stage("download", stages, opts, () => this.d.imageStore.fetch(remote, dir, { signal: opts.signal, insecure }));
      if (opts.signal.aborted) throw new BangerError("CANCELLED", `pull of ${remote.digest} cancelled`, { hint: "nothing was kept" });
      const image = await this.stage("register", stages, opts, () => this.register(remote, files, input.name));
      this.d.log.info({ image: image.name, digest: image.digest, source: remote.source }, "image pulled");
      return { image, present: false, stages };
    } finally {
      this.reserved -= bytes;
      await this.d.files.remove(dir);
    }
  }

  /** The named source, or each configured source in turn until one has the digest. */
  private async resolve(input: PullInput, insecure: boolean, signal: AbortSignal): Promise<RemoteImage> {
    if (input.source) return this.d.imageStore.resolve(input.source, { signal, insecure, digest: input.digest });
    const sources = this.d.config.imageSources;
    if (sources.length === 0) {
      throw new BangerError("IMAGE_NOT_FOUND", `no image ${input.digest} here, and no images.sources to pull it from`, {
        hint: 'add `[images] sources = ["oci://registry:5000/banger"]` to the config, or pull it from a source by hand with `banger image pull <source>`',
      });
    }
    const misses: string[] = [];
    for (const source of sources) {
      try {
        return await this.d.imageStore.resolve(source, { signal, insecure, digest: input.digest });
      } catch (e) {
        // A tampered or wrong image at one source is an answer, not a miss: never fall through past it.
        if (signal.aborted || !(isCode(e, "IMAGE_NOT_FOUND") || isCode(e, "IMAGE_SOURCE_FAILED") || isCode(e, "TIMEOUT"))) throw e;
        misses.push(`${source}: ${(e as Error).message}`);
      }
    }
    throw new BangerError("IMAGE_NOT_FOUND", `no configured source has image ${input.digest} (${misses.join("; ")})`, {
      hint: "push it to one of images.sources with `banger image push`, or check that the sources are reachable",
    });
  }

  private async register(remote: RemoteImage, files: Map<ArtifactRole, string>, name?: string): Promise<Image> {
    const m = parseManifest(remote.manifestText);
    const image = await this.images.register(
      {
        name: name ?? this.freeName(remote),
        kernel: files.get("kernel")!,
        initrd: files.get("initrd"),
        rootfs: files.get("rootfs")!,
        workSeed: files.get("work_seed"),
        bootArgs: m.bootArgs,
        os: m.os,
        services: m.services,
        move: [...files.keys()],
        pulledFrom: remote.source,
      },
      { internal: true },
    );
    // The blobs were each verified; this checks the boot set as registered is the one asked for, as a whole.
    if (image.digest !== remote.digest) {
      await this.images.remove(image.name);
      throw new BangerError("IMAGE_DIGEST_MISMATCH", `image from ${remote.source} registers as ${image.digest}, expected ${remote.digest}`, {
        hint: "the source's manifest does not describe its files as this banger records them; nothing was kept",
      });
    }
    return image;
  }

  private freeName(remote: RemoteImage): string {
    const short = remote.digest.slice("sha256:".length, "sha256:".length + 12);
    const base = remote.name && /^[a-z0-9][a-z0-9._-]{0,50}$/.test(remote.name) ? remote.name : "pulled";
    return this.d.store.getImage(base) ? `${base}-${short}` : base;
  }

  /**
   * Room for `bytes` more of pulled images under images.store_max_gib: least recently used pulled images
   * that no VM uses and no alias names are removed first. One reservation at a time.
   */
  private reserve(bytes: number, digest: string): Promise<void> {
    const run = this.evictions.then(async () => {
      const max = this.d.config.imageStoreMaxBytes;
      if (max > 0) await this.evictFor(bytes, max, digest);
      this.reserved += bytes;
    });
    this.evictions = run.catch(() => undefined);
    return run;
  }

  private async evictFor(bytes: number, max: number, digest: string): Promise<void> {
    const full = (why: string) =>
      new BangerError("IMAGE_STORE_FULL", `image ${digest} needs ${(bytes / GIB).toFixed(2)} GiB: ${why}`, {
        hint: "raise images.store_max_gib, or free room: `banger image rm` pulled images, remove VMs that use them, or drop aliases pointing at them",
      });
    if (bytes > max) throw full(`more than images.store_max_gib (${(max / GIB).toFixed(2)} GiB) on its own`);
    const pulled = this.d.store.listImages().filter((i) => i.pulledFrom !== undefined);
    let used = pulled.reduce((s, i) => s + sizeOf(i), 0) + this.reserved;
    const candidates = pulled
      .filter((i) => i.aliases.length === 0 && this.d.store.vmsUsingImage(i.id).length === 0)
      .sort((a, b) => (a.lastUsedAt ?? a.createdAt).localeCompare(b.lastUsedAt ?? b.createdAt));
    for (const c of candidates) {
      if (used + bytes <= max) break;
      try {
        await this.images.remove(c.name);
      } catch (e) {
        // A create may have taken it meanwhile: in use is never evicted.
        if (isCode(e, "IMAGE_IN_USE") || isCode(e, "IMAGE_NOT_FOUND")) continue;
        throw e;
      }
      used -= sizeOf(c);
      this.d.log.info({ stage: "evict", image: c.name, digest: c.digest, lastUsedAt: c.lastUsedAt }, "evicted a pulled image (least recently used)");
    }
    if (used + bytes > max) throw full(`pulled images in use or aliased hold ${(used / GIB).toFixed(2)} GiB of ${(max / GIB).toFixed(2)}`);
  }

  /** Publish an image: checksums verified first, so a changed file is never pushed under the recorded digest. */
  async push(
    ref: string,
    dest: string,
    opts: { signal: AbortSignal; insecure?: boolean },
  ): Promise<{ reference: string; manifestDigest: string; digest: string }> {
    const img = this.images.get(ref);
    const problem = (await this.images.verifyChecksums(img)).get(img.name);
    if (problem) {
      throw new BangerError("IMAGE_BROKEN", `image ${img.name} is broken (${problem}); refusing to push it`, {
        hint: "re-register the image from its build output",
      });
    }
    const manifestText = canonicalManifest(manifestOf(img));
    const digest = img.digest!;
    const files = img.artifacts.map((a) => ({ role: a.role, path: a.path, sha256: a.sha256, size: a.sizeBytes }));
    const out = await this.d.imageStore.push({ digest, manifestText, name: img.name, files }, dest, {
      signal: opts.signal,
      insecure: opts.insecure || this.d.config.imageInsecure,
    });
    this.d.log.info({ image: img.name, digest, dest: out.reference }, "image pushed");
    return { ...out, digest };
  }
}

const perDaemon = new WeakMap<object, ImageDistribution>();

/** The daemon's one ImageDistribution (its in-flight pulls and reservations are shared by the API and the node agent). */
export function imageDistribution(d: Deps, images: ImageService): ImageDistribution {
  let it = perDaemon.get(d.store);
  if (!it) {
    it = new ImageDistribution(d, images);
    perDaemon.set(d.store, it);
  }
  return it;
}
