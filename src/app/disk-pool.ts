import { createHash, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Image } from "../domain/types.js";
import type { AppDeps } from "./deps.js";
import { cloneRootfs, injectIdentity, makeWorkDisk } from "./vm-disks.js";

/** A ready-made set of per-VM disks for one image. */
export interface PreparedDisks {
  rootfs: string;
  work: string;
  workGib: number;
  hostPublicKey: string;
}

interface Meta {
  imageSha: string;
  userKey: string;
  workGib: number;
  hostPublicKey: string;
}

/**
 * Warm pool of per-VM disks. Copying a rootfs and injecting identity costs
 * hundreds of milliseconds without reflinks, so it is done ahead of time:
 * each entry is a full, private rootfs copy (own host key, banger key) plus a
 * /root disk grown from the work-seed to the default size. A create renames an
 * entry into its VM dir, which keeps every VM's disks its own (same semantics
 * as copying at create time). Entries survive daemon restarts; one whose
 * image or banger key changed is discarded. Refills run after a create
 * finishes, so they never compete with a booting guest for the CPU.
 */
export class DiskPool {
  private readonly ready = new Map<string, { path: string; meta: Meta }[]>();
  private readonly filling = new Map<string, Promise<void>>();
  private closed = false;

  constructor(private readonly d: AppDeps, private readonly dir: string, private readonly size: number) {}

  private imageDir(imageId: string): string {
    return join(this.dir, imageId);
  }

  private async expectedMeta(image: Image, workGib: number): Promise<Omit<Meta, "hostPublicKey">> {
    const userKey = createHash("sha256").update(await readFile(`${await this.d.sshKey()}.pub`)).digest("hex");
    const imageSha = image.artifacts.map((a) => a.sha256).join(":");
    return { imageSha, userKey, workGib };
  }

  /** Daemon start: keep complete entries that still match their image and key, drop the rest. */
  async adopt(images: Image[]): Promise<void> {
    if (!existsSync(this.dir)) return;
    const byId = new Map(images.map((i) => [i.id, i]));
    for (const imageId of readdirSync(this.dir)) {
      const image = byId.get(imageId);
      if (!image || image.status !== "ok" || this.size === 0) {
        await rm(this.imageDir(imageId), { recursive: true, force: true });
        continue;
      }
      const want = await this.expectedMeta(image, this.d.cfg.config.work_disk_gib).catch(() => undefined);
      const kept: { path: string; meta: Meta }[] = [];
      for (const entry of readdirSync(this.imageDir(imageId))) {
        const path = join(this.imageDir(imageId), entry);
        const meta = readMeta(path);
        if (want && meta && meta.imageSha === want.imageSha && meta.userKey === want.userKey && meta.workGib === want.workGib && kept.length < this.size) {
          kept.push({ path, meta });
        } else {
          await rm(path, { recursive: true, force: true });
        }
      }
      this.ready.set(imageId, kept);
      this.d.log.info({ stage: "disk-pool", image: image.name, entries: kept.length }, "adopted warm disks");
    }
  }

  /** An entry for this image and work-disk size, or undefined (the caller builds disks itself). Never blocks. */
  take(image: Image, workGib: number): PreparedDisks | undefined {
    const entries = this.ready.get(image.id) ?? [];
    const idx = entries.findIndex((e) => e.meta.workGib === workGib);
    if (idx < 0) return undefined;
    const [{ path, meta }] = entries.splice(idx, 1);
    return { rootfs: join(path, "rootfs.ext4"), work: join(path, "work.ext4"), workGib: meta.workGib, hostPublicKey: meta.hostPublicKey };
  }

  /** Move a taken entry's files to their final place, then drop the entry dir. */
  async claim(p: PreparedDisks, rootfs: string, work: string): Promise<void> {
    await rename(p.rootfs, rootfs);
    await rename(p.work, work);
    await rm(join(p.rootfs, ".."), { recursive: true, force: true });
  }

  /** Top the image's pool up in the background; at most one refill per image at a time. */
  refill(image: Image): void {
    if (this.size === 0 || this.closed || image.status !== "ok" || this.filling.has(image.id)) return;
    const job = this.fill(image)
      .catch((e) => this.d.log.warn({ stage: "disk-pool", image: image.name, err: (e as Error).message }, "disk pool refill failed"))
      .finally(() => this.filling.delete(image.id));
    this.filling.set(image.id, job);
  }

  private async fill(image: Image): Promise<void> {
    const workGib = this.d.cfg.config.work_disk_gib;
    const want = await this.expectedMeta(image, workGib);
    const entries = this.ready.get(image.id) ?? [];
    this.ready.set(image.id, entries);
    while (!this.closed && entries.length < this.size && this.d.store.getImageById(image.id)) {
      const t0 = performance.now();
      const path = join(this.imageDir(image.id), randomUUID());
      await mkdir(path, { recursive: true });
      try {
        await cloneRootfs(this.d, image, join(path, "rootfs.ext4"));
        await makeWorkDisk(this.d, image, join(path, "work.ext4"), workGib);
        const hostPublicKey = await injectIdentity(this.d, join(path, "rootfs.ext4"));
        // meta.json last: an entry without it is incomplete and is discarded at the next start.
        const meta: Meta = { ...want, hostPublicKey };
        await writeFile(join(path, "meta.json"), JSON.stringify(meta));
        entries.push({ path, meta });
      } catch (e) {
        await rm(path, { recursive: true, force: true });
        throw e;
      }
      this.d.log.info({ stage: "disk-pool", image: image.name, entries: entries.length, ms: Math.round(performance.now() - t0) }, "warm disks ready");
    }
  }

  /** Wait for running refills; tests and the benchmark use it to measure a steady state. */
  async settled(): Promise<void> {
    await Promise.all([...this.filling.values()]);
  }

  async drop(imageId: string): Promise<void> {
    await this.filling.get(imageId);
    this.ready.delete(imageId);
    await rm(this.imageDir(imageId), { recursive: true, force: true });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.settled();
  }

  stats(): Record<string, number> {
    return Object.fromEntries([...this.ready].map(([id, e]) => [id, e.length]));
  }
}

function readMeta(entry: string): Meta | undefined {
  try {
    return JSON.parse(readFileSync(join(entry, "meta.json"), "utf8")) as Meta;
  } catch {
    return undefined;
  }
}
