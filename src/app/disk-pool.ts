import { createHash, randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { errnoError } from "../domain/errors.js";
import { artifactOf, type Image } from "../domain/types.js";
import type { Files } from "../ports/files.js";
import type { AppConfig, AppDeps, PoolUsage, PreparedDisks, SnapshotDisks, WarmDisks } from "./deps.js";
import { cloneRootfs, injectIdentity, makeWorkDisk } from "./vm-disks.js";

interface Meta {
  imageSha: string;
  userKey: string;
  workGib: number;
  hostPublicKey: string;
  /** Every disk file of the set and its byte size, so adopt can tell a complete set from a damaged one. */
  files: Record<string, number>;
  /**
   * Set for private copies of a golden snapshot's disks (no identity injected: a restored clone is
   * re-identified by its guest). userKey is empty and workGib is the snapshot's.
   */
  snapshotId?: string;
}

type Expected = Pick<Meta, "imageSha" | "userKey" | "workGib">;
type Built = { dir: string; meta: Meta; bytes: number; ms: number };

const META = "meta.json";
const SET_FILES = ["rootfs.ext4", "work.ext4"];
const TMP_PREFIX = ".tmp-";
const GIB = 1024 ** 3;

/** The work-disk size a create gets when it asks for none; the only size the pool builds for the image. */
export function defaultWorkGib(config: Pick<AppConfig, "workDiskGib">, image: Image): number {
  return image.defaultWorkDiskGib ?? config.workDiskGib;
}

/** What the pool needs: nothing of the lifecycle, so it can be built before the use cases that take from it. */
export type PoolDeps = Pick<AppDeps, "store" | "disks" | "files" | "keys" | "log"> & Partial<Pick<AppDeps, "ops">> & { config: Pick<AppConfig, "workDiskGib"> };

/** How often a refill waiting for creates to finish looks again. */
const IDLE_POLL_MS = 250;

export interface PoolOptions {
  dir: string;
  /** Sets kept per image (disk_pool_size). */
  size: number;
  /** disk_pool_max_gib; 0 means no cap. */
  maxGib: number;
}

/**
 * Warm pool of per-VM disks. Copying a rootfs and injecting identity costs
 * hundreds of milliseconds without reflinks, so it is done ahead of time:
 * each set is a full, private rootfs copy (own host key, banger key) plus a
 * /root disk grown from the work-seed to the image's default size, in its own
 * directory. A set appears by renaming a finished temp dir and is claimed by
 * renaming the whole directory into place as the VM's dir, so a crash at any
 * point leaves either a complete set, a complete VM dir or a temp dir that
 * adopt removes. Sets survive daemon restarts; one whose image, banger key or
 * files changed is discarded. Refills run after a create finishes, one set at
 * a time across images, so they never compete with a booting guest for the CPU
 * and the size cap holds.
 */
export class DiskPool implements WarmDisks {
  private readonly ready = new Map<string, { dir: string; meta: Meta }[]>();
  private readonly filling = new Map<string, Promise<void>>();
  /** Allocated bytes of the last set built or adopted per image: the estimate for its next one. */
  private readonly setBytes = new Map<string, number>();
  private readonly capped = new Set<string>();
  private building: Promise<unknown> = Promise.resolve();
  private readonly maxBytes: number;
  private closed = false;

  private readonly dir: string;
  private readonly size: number;

  constructor(
    private readonly d: PoolDeps,
    opts: PoolOptions,
  ) {
    this.dir = opts.dir;
    this.size = opts.size;
    this.maxBytes = Math.floor(opts.maxGib * GIB);
  }

  private imageDir(imageId: string): string {
    return join(this.dir, imageId);
  }

  private async expected(image: Image): Promise<Expected> {
    const userKey = createHash("sha256")
      .update(await this.d.files.readText(`${await this.d.keys.sshKey()}.pub`))
      .digest("hex");
    const imageSha = image.artifacts.map((a) => a.sha256).join(":");
    return { imageSha, userKey, workGib: defaultWorkGib(this.d.config, image) };
  }

  private async discard(path: string, why: string): Promise<void> {
    this.d.log.info({ stage: "disk-pool", path, why }, "discarding warm disks");
    await this.d.files.remove(path).catch((e) => this.d.log.warn({ stage: "disk-pool", path, err: (e as Error).message }, "cannot remove warm disks"));
  }

  /** Daemon start: keep complete sets that still match their image and key, drop everything else. */
  async adopt(images: Image[]): Promise<void> {
    const byId = new Map(images.map((i) => [i.id, i]));
    for (const imageId of await this.d.files.list(this.dir).catch(() => [] as string[])) {
      const image = byId.get(imageId);
      const path = this.imageDir(imageId);
      if (!image || image.status !== "ok" || this.size === 0) {
        await this.discard(path, !image ? "unknown image" : image.status !== "ok" ? `image ${image.name} is ${image.status}` : "disk_pool_size is 0");
        continue;
      }
      const want = await this.expected(image).catch(() => undefined);
      const entries = (await this.d.files.stat(path))?.isDirectory ? await this.d.files.list(path) : undefined;
      if (!want || !entries) {
        await this.discard(path, want ? "not a directory" : "banger key unreadable");
        continue;
      }
      const kept: { dir: string; meta: Meta }[] = [];
      for (const entry of entries) {
        const dir = join(path, entry);
        const found = entry.startsWith(TMP_PREFIX) ? "incomplete build" : await readSet(this.d.files, dir, want);
        const sameKind = (m: Meta) => kept.filter((k) => (k.meta.snapshotId ?? "") === (m.snapshotId ?? "")).length;
        if (typeof found === "string") await this.discard(dir, found);
        else if (sameKind(found) >= this.size) await this.discard(dir, "more sets than disk_pool_size");
        else kept.push({ dir, meta: found });
      }
      if (kept.length > 0) this.setBytes.set(imageId, await allocatedBytes(this.d.files, kept[0].dir));
      this.ready.set(imageId, kept);
      this.d.log.info({ stage: "disk-pool", image: image.name, entries: kept.length }, "adopted warm disks");
    }
  }

  /** A set for this image and work-disk size, or undefined (the caller builds disks itself). Never blocks. */
  take(image: Image, workGib: number): PreparedDisks | undefined {
    const entries = this.ready.get(image.id) ?? [];
    const idx = entries.findIndex((e) => !e.meta.snapshotId && e.meta.workGib === workGib);
    if (idx < 0) return this.miss();
    const [{ dir, meta }] = entries.splice(idx, 1);
    return { dir, workGib: meta.workGib, hostPublicKey: meta.hostPublicKey };
  }

  /** Copies of a replaced snapshot would restore against the wrong memory state: removed, never handed out. */
  private pruneSnapshots(entries: { dir: string; meta: Meta }[], current: string): void {
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i];
      if (e.meta.snapshotId && e.meta.snapshotId !== current) {
        entries.splice(i, 1);
        void this.discard(e.dir, `snapshot ${e.meta.snapshotId} was replaced by ${current}`);
      }
    }
  }

  takeSnapshot(image: Image, snapshotId: string): PreparedDisks | undefined {
    const entries = this.ready.get(image.id) ?? [];
    this.pruneSnapshots(entries, snapshotId);
    const idx = entries.findIndex((e) => e.meta.snapshotId === snapshotId);
    if (idx < 0) return this.miss();
    const [{ dir, meta }] = entries.splice(idx, 1);
    return { dir, workGib: meta.workGib, hostPublicKey: meta.hostPublicKey };
  }

  /** Make a taken set the VM's directory. vmDir must not exist; on failure it still does not. */
  async claim(p: PreparedDisks, vmDir: string): Promise<void> {
    try {
      await this.d.files.mkdir(dirname(vmDir));
      await this.d.files.rename(p.dir, vmDir);
    } catch (e) {
      // The set is out of the ready list already; keeping it would only hold disk space until the next start.
      await this.d.files.remove(p.dir).catch(() => undefined);
      throw e;
    }
    // A leftover meta.json in a VM dir is harmless, so this cannot fail the create.
    await this.d.files
      .remove(join(vmDir, META))
      .catch((e) => this.d.log.warn({ stage: "disk-pool", vmDir, err: (e as Error).message }, "cannot remove pool meta.json"));
  }

  /** Top the image's pool up in the background; at most one refill per image and kind at a time. */
  refill(image: Image, snapshot?: SnapshotDisks): void {
    const key = `${image.id}:${snapshot?.id ?? "cold"}`;
    if (this.size === 0 || this.closed || image.status !== "ok" || this.filling.has(key)) return;
    const job = this.fill(image, snapshot)
      .catch((e) => {
        // Disk work from the pool can fail on the host's side (ENOSPC from mkfs, say); the pool dir is where to look.
        const err = errnoError(e, { path: this.dir, action: "refilling the warm disk pool" });
        this.d.log.warn({ stage: "disk-pool", image: image.name, code: err.code, err: err.message, hint: err.hint }, "disk pool refill failed");
      })
      .finally(() => this.filling.delete(key));
    this.filling.set(key, job);
  }

  /** Up to `size` sets of each kind: cold-boot sets, and copies of the image's current snapshot. */
  private async fill(image: Image, snapshot?: SnapshotDisks): Promise<void> {
    const want = await this.expected(image);
    const entries = this.ready.get(image.id) ?? [];
    this.ready.set(image.id, entries);
    if (snapshot) this.pruneSnapshots(entries, snapshot.id);
    const kind = (e: { meta: Meta }) => (snapshot ? e.meta.snapshotId === snapshot.id : !e.meta.snapshotId);
    const more = () => !this.closed && entries.filter(kind).length < this.size && this.d.store.getImageById(image.id) !== undefined;
    while (more()) {
      // Never while a create is in flight (its own included, until it lets go of its lock): a copy
      // or an mkfs takes the CPU and disk its guest boots on.
      while (!this.closed && (this.d.ops?.inFlight("create").length ?? 0) > 0) await new Promise((r) => setTimeout(r, IDLE_POLL_MS));
      if (!more()) return;
      const built = await this.serial(async () =>
        more() && (await this.roomFor(image)) ? (snapshot ? this.buildSnapshotSet(image, want, snapshot) : this.build(image, want)) : undefined,
      );
      if (!built) return;
      entries.push({ dir: built.dir, meta: built.meta });
      this.setBytes.set(image.id, built.bytes);
      this.d.log.info({ stage: "disk-pool", image: image.name, entries: entries.length, ms: built.ms }, "warm disks ready");
    }
  }

  /** One build at a time across images: the cap check and the build it allows must not interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.building.then(fn);
    this.building = run.catch(() => undefined);
    return run;
  }

  private async roomFor(image: Image): Promise<boolean> {
    if (this.maxBytes === 0) return true;
    const used = await allocatedBytes(this.d.files, this.dir);
    const next = this.setBytes.get(image.id) ?? (await this.estimate(image));
    if (used + next <= this.maxBytes) {
      this.capped.delete(image.id);
      return true;
    }
    if (!this.capped.has(image.id)) {
      this.capped.add(image.id);
      this.d.log.warn(
        { stage: "disk-pool", image: image.name, usedBytes: used, setBytes: next, maxBytes: this.maxBytes },
        "disk pool is at disk_pool_max_gib; not adding warm disks",
      );
    }
    return false;
  }

  /** Before the first set exists: a set holds about as much as the image's rootfs and work-seed. */
  private async estimate(image: Image): Promise<number> {
    let sum = 0;
    for (const a of [artifactOf(image, "rootfs"), artifactOf(image, "work_seed")]) {
      if (a) sum += await allocatedBytes(this.d.files, a.path);
    }
    return sum;
  }

  /** A cold-boot set: a rootfs copy with a fresh host key and the banger key, and /root grown from the work-seed. */
  private build(image: Image, want: Expected): Promise<Built> {
    return this.buildSet(image, async (tmp) => {
      await cloneRootfs(this.d, image, join(tmp, "rootfs.ext4"));
      await makeWorkDisk(this.d, image, join(tmp, "work.ext4"), want.workGib);
      return { ...want, hostPublicKey: await injectIdentity(this.d, join(tmp, "rootfs.ext4")) };
    });
  }

  /** Private copies of a golden snapshot's disks, exactly as they were (a restore needs them unchanged). */
  private buildSnapshotSet(image: Image, want: Expected, snap: SnapshotDisks): Promise<Built> {
    return this.buildSet(image, async (tmp) => {
      await Promise.all([this.d.files.copy(snap.rootfs, join(tmp, "rootfs.ext4")), this.d.files.copy(snap.work, join(tmp, "work.ext4"))]);
      return { imageSha: want.imageSha, userKey: "", workGib: snap.workGib, hostPublicKey: snap.hostPublicKey, snapshotId: snap.id };
    });
  }

  /**
   * Writes a set's disks into a temp dir, records their sizes in meta.json, and renames it into
   * place: a crash leaves a complete set or a temp dir that adopt removes.
   */
  private async buildSet(image: Image, write: (tmp: string) => Promise<Omit<Meta, "files">>): Promise<Built> {
    const t0 = performance.now();
    const tmp = join(this.imageDir(image.id), `${TMP_PREFIX}${randomUUID()}`);
    try {
      await this.d.files.mkdir(tmp);
      const described = await write(tmp);
      const files: Record<string, number> = {};
      for (const f of SET_FILES) files[f] = (await this.d.files.stat(join(tmp, f)))?.size ?? 0;
      const meta: Meta = { ...described, files };
      await this.d.files.writeText(join(tmp, META), JSON.stringify(meta));
      const bytes = await allocatedBytes(this.d.files, tmp);
      const dir = join(this.imageDir(image.id), randomUUID());
      await this.d.files.rename(tmp, dir);
      return { dir, meta, bytes, ms: Math.round(performance.now() - t0) };
    } catch (e) {
      await this.d.files.remove(tmp).catch(() => undefined);
      throw e;
    }
  }

  /** Wait for running refills; tests and the benchmark use it to measure a steady state. */
  async settled(): Promise<void> {
    await Promise.all([...this.filling.values()]);
  }

  async drop(imageId: string): Promise<void> {
    await Promise.all([...this.filling].filter(([k]) => k.startsWith(`${imageId}:`)).map(([, job]) => job));
    this.ready.delete(imageId);
    this.setBytes.delete(imageId);
    this.capped.delete(imageId);
    await this.d.files.remove(this.imageDir(imageId));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.settled();
  }

  /** Takes that found no ready set, with the pool enabled (`banger_disk_pool_misses_total`). */
  misses = 0;

  private miss(): undefined {
    if (this.size > 0) this.misses++;
    return undefined;
  }

  stats(): Record<string, number> {
    return Object.fromEntries([...this.ready].map(([id, e]) => [id, e.length]));
  }

  async usage(): Promise<PoolUsage> {
    return { sets: this.stats(), bytes: await allocatedBytes(this.d.files, this.dir), maxBytes: this.maxBytes, capped: [...this.capped] };
  }
}

/** The set's meta when it is complete and current, else why it is not. */
async function readSet(files: Files, dir: string, want: Expected): Promise<Meta | string> {
  let meta: Meta;
  try {
    meta = JSON.parse(await files.readText(join(dir, META))) as Meta;
  } catch {
    return "meta.json missing or unreadable";
  }
  if (meta.imageSha !== want.imageSha) return "image changed";
  // A snapshot's copies carry no banger key and its own /root size; whether the snapshot is still current is for takeSnapshot.
  if (!meta.snapshotId && meta.userKey !== want.userKey) return "banger key changed";
  if (!meta.snapshotId && meta.workGib !== want.workGib) return `work disk is ${meta.workGib} GiB, the default is now ${want.workGib} GiB`;
  if (typeof meta.hostPublicKey !== "string" || typeof meta.files !== "object" || !meta.files) return "meta.json incomplete";
  for (const f of new Set([...SET_FILES, ...Object.keys(meta.files)])) {
    if (typeof meta.files[f] !== "number") return `meta.json does not list ${f}`;
    const st = await files.stat(join(dir, f)).catch(() => undefined);
    if (!st?.isFile) return `${f} missing`;
    if (st.size !== meta.files[f]) return `${f} is ${st.size} bytes, expected ${meta.files[f]}`;
  }
  return meta;
}

/** Allocated bytes of every file under path; what a sparse or reflinked disk really holds. */
async function allocatedBytes(files: Files, path: string): Promise<number> {
  const st = await files.stat(path).catch(() => undefined); // may vanish mid-walk (a claim or drop)
  if (!st) return 0;
  if (!st.isDirectory) return st.allocatedBytes;
  let sum = 0;
  for (const name of await files.list(path).catch(() => [] as string[])) sum += await allocatedBytes(files, join(path, name));
  return sum;
}
