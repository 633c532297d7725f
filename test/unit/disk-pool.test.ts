import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { world as appWorld } from "../helpers/app-world.js";
import { createVm } from "../../src/app/create.js";
import { DiskPool } from "../../src/app/disk-pool.js";
import { diskPoolCheck } from "../../src/app/doctor.js";
import { BangerError, errnoError } from "../../src/domain/errors.js";
import type { Image } from "../../src/domain/types.js";
import type { Disks } from "../../src/ports/disks.js";

const GIB = 1024 ** 3;

/** Just enough of the app to create VMs: disks are small files whose content says what they are. */
function world(opts: { size?: number; maxGib?: number; workFails?: NodeJS.ErrnoException } = {}) {
  const logs: { msg: string; [k: string]: unknown }[] = [];
  const log = pino(
    { level: "info" },
    {
      write: (s: string) => {
        logs.push(JSON.parse(s));
      },
    },
  );
  const disks: Disks = {
    cloneRootfs: async (_s, dst) => writeFileSync(dst, "rootfs"),
    makeWorkDisk: async (dst, gib) => {
      if (opts.workFails) throw opts.workFails;
      writeFileSync(dst, `work ${gib}`);
    },
    inject: async () => undefined,
    ext4Problem: async () => undefined,
    hasFile: async () => false,
  };
  const w = appWorld(undefined, 0, { disks, log });
  const { d, store, cfg, dir } = w;
  const poolDir = join(cfg.paths.stateDir, "pool");
  const newPool = (size = opts.size ?? 1) => new DiskPool(d, { dir: poolDir, size, maxGib: opts.maxGib ?? cfg.config.disk_pool_max_gib });
  d.diskPool = newPool();
  const art = (role: "kernel" | "rootfs" | "work_seed", c: string) => ({ role, path: join(dir, `${id}-${role}`), sha256: c.repeat(64), sizeBytes: 1 });
  let id = "";
  const image = (name: string, defaultWorkDiskGib?: number): Image => {
    id = `id-${name}`;
    return store.insertImage({
      id,
      name,
      bootArgs: "console=ttyS0",
      defaultWorkDiskGib,
      guest: { os: "debian", services: [{ name: "ssh", port: 22 }] },
      artifacts: [art("kernel", "a"), art("rootfs", "b"), art("work_seed", "c")],
    });
  };
  return { d, store, cfg, logs, poolDir, newPool, image };
}

const rootfsDetail = (w: ReturnType<typeof world>, vmId: string) => w.store.events(vmId).find((e) => e.stage === "rootfs")?.detail;

describe("warm disk pool", () => {
  it("builds sets at the image's default work size, so creates from that image hit the pool", async () => {
    const w = world();
    const img = w.image("small", 4);
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    expect(w.d.diskPool.stats()).toEqual({ [img.id]: 1 });

    const warm = await createVm(w.d, { image: "small", name: "warm" });
    expect(warm.workDiskGib).toBe(4);
    expect(rootfsDetail(w, warm.id)).toBe("from warm pool");
    expect(readFileSync(join(warm.dir, "work.ext4"), "utf8")).toBe("work 4");
    await w.d.diskPool.settled();

    // Another explicit size takes the cold path and leaves the warm set alone.
    const cold = await createVm(w.d, { image: "small", name: "cold", workDiskGib: w.cfg.config.work_disk_gib });
    expect(rootfsDetail(w, cold.id)).toBeUndefined();
    expect(readFileSync(join(cold.dir, "work.ext4"), "utf8")).toBe(`work ${w.cfg.config.work_disk_gib}`);
    expect(w.d.diskPool.stats()).toEqual({ [img.id]: 1 });
  });

  it("claims a set with one rename of its directory, which becomes the VM dir", async () => {
    const w = world();
    const img = w.image("deb");
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    const p = w.d.diskPool.take(img, w.cfg.config.work_disk_gib)!;
    expect(p.hostPublicKey).toMatch(/HOSTKEY/);
    expect(w.d.diskPool.take(img, w.cfg.config.work_disk_gib)).toBeUndefined();
    const vmDir = join(w.cfg.paths.vmsDir, "vm1");
    await w.d.diskPool.claim(p, vmDir);
    expect(existsSync(p.dir)).toBe(false);
    expect(readdirSync(vmDir).sort()).toEqual(["rootfs.ext4", "work.ext4"]);
    expect(readdirSync(join(w.poolDir, img.id))).toEqual([]);
  });

  it("a failed claim is DISK_FAILED, not INTERNAL", async () => {
    const w = world();
    const img = w.image("deb");
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    const p = w.d.diskPool.take(img, w.cfg.config.work_disk_gib)!;
    const vmDir = join(w.cfg.paths.vmsDir, "taken");
    mkdirSync(vmDir, { recursive: true });
    writeFileSync(join(vmDir, "x"), "x");
    const err = await w.d.diskPool.claim(p, vmDir).catch((e) => e as BangerError);
    expect(err).toBeInstanceOf(BangerError);
    expect((err as BangerError).code).toBe("DISK_FAILED");
    expect(existsSync(p.dir)).toBe(false);
  });

  it("adopt keeps complete sets and drops truncated, incomplete, temp and unknown ones", async () => {
    const w = world({ size: 4 });
    const img = w.image("deb");
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    const imgDir = join(w.poolDir, img.id);
    const [truncated, missing, oldStyle, good] = readdirSync(imgDir).map((s) => join(imgDir, s));
    truncateSync(join(truncated, "work.ext4"), 2);
    rmSync(join(missing, "rootfs.ext4"));
    const meta = JSON.parse(readFileSync(join(oldStyle, "meta.json"), "utf8"));
    delete meta.files;
    writeFileSync(join(oldStyle, "meta.json"), JSON.stringify(meta));
    mkdirSync(join(imgDir, ".tmp-crashed"));
    writeFileSync(join(imgDir, ".tmp-crashed", "rootfs.ext4"), "half");
    mkdirSync(join(w.poolDir, "gone-image", "set"), { recursive: true });

    const pool = w.newPool(4);
    await pool.adopt(w.store.listImages());
    expect(pool.stats()).toEqual({ [img.id]: 1 });
    expect(readdirSync(imgDir)).toEqual([good.split("/").pop()]);
    expect(readdirSync(w.poolDir)).toEqual([img.id]);
    const why = w.logs.filter((l) => l.msg === "discarding warm disks").map((l) => l.why);
    expect(why).toEqual(
      expect.arrayContaining(["unknown image", "incomplete build", "meta.json incomplete", "rootfs.ext4 missing", "work.ext4 is 2 bytes, expected 7"]),
    );
    w.d.diskPool = pool;
    const vm = await createVm(w.d, { image: "deb", name: "adopted" });
    expect(rootfsDetail(w, vm.id)).toBe("from warm pool");
  });

  it("adopt drops sets built for another work size", async () => {
    const w = world();
    const img = w.image("deb");
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    const resized = w.image("deb-big", 7);
    // The same set under an image (same checksums) whose default size is 7 GiB: the recorded 10 GiB no longer matches.
    renameSync(join(w.poolDir, img.id), join(w.poolDir, resized.id));
    const pool = w.newPool();
    await pool.adopt(w.store.listImages());
    expect(pool.stats()).toEqual({ [resized.id]: 0 });
    expect(w.logs.some((l) => l.why === "work disk is 10 GiB, the default is now 7 GiB")).toBe(true);
  });

  it("stops refilling at disk_pool_max_gib, logs it once, and doctor warns", async () => {
    // One byte: the first set fits the (unknown) estimate, the second no longer fits.
    const w = world({ size: 3, maxGib: 1 / GIB });
    const img = w.image("deb");
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    expect(w.d.diskPool.stats()).toEqual({ [img.id]: 1 });
    expect(w.logs.filter((l) => l.msg.includes("disk_pool_max_gib"))).toHaveLength(1);
    const u = await w.d.diskPool.usage();
    expect(u.bytes).toBeGreaterThan(0);
    expect(u.capped).toEqual([img.id]);
    const check = await diskPoolCheck(w.d);
    expect(check).toMatchObject({ name: "disk-pool", status: "WARN" });
    expect(check.detail).toMatch(/deb 1; .* GiB of 0\.0 GiB \(disk_pool_max_gib\); not refilling deb/);
  });

  it("with no cap fills to disk_pool_size and doctor passes", async () => {
    const w = world({ size: 3, maxGib: 0 });
    const img = w.image("deb");
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    expect(w.d.diskPool.stats()).toEqual({ [img.id]: 3 });
    const check = await diskPoolCheck(w.d);
    expect(check).toMatchObject({ name: "disk-pool", status: "PASS" });
    expect(check.detail).toMatch(/deb 3; .* GiB of no cap/);
  });

  it("a full disk during refill is logged as DISK_FAILED and leaves no temp dir", async () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    const w = world({ workFails: enospc });
    const img = w.image("deb");
    w.d.diskPool.refill(img);
    await w.d.diskPool.settled();
    expect(w.d.diskPool.stats()).toEqual({ [img.id]: 0 });
    expect(readdirSync(join(w.poolDir, img.id))).toEqual([]);
    const failed = w.logs.find((l) => l.msg === "disk pool refill failed");
    expect(failed).toMatchObject({ code: "DISK_FAILED" });
    expect(failed?.hint).toContain(w.poolDir);
  });
});

describe("errnoError", () => {
  const e = (code: string) => Object.assign(new Error(`${code}: x`), { code });
  it("maps space, quota and permission errors to DISK_FAILED with a hint naming the directory", () => {
    for (const code of ["ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS"]) {
      const err = errnoError(e(code), { path: "/var/lib/banger/vms", action: "moving" });
      expect(err.code).toBe("DISK_FAILED");
      expect(err.hint).toContain("/var/lib/banger/vms");
    }
    expect(errnoError(e("ENOENT"), { path: "/p", action: "moving" }).code).toBe("DISK_FAILED");
    expect(errnoError(new Error("plain"), { path: "/p", action: "moving" }).code).toBe("INTERNAL");
    const kept = new BangerError("VMM_FAILED", "x");
    expect(errnoError(kept, { path: "/p", action: "moving" })).toBe(kept);
  });
});

describe("warm disk pool: when refills run", () => {
  it("waits while a create is in flight, then fills", async () => {
    const w = world();
    const img = w.image("deb");
    const pool = new DiskPool({ ...w.d, ops: w.d.ops }, { dir: w.poolDir, size: 1, maxGib: 0 });
    const ticket = w.d.ops.begin("booting", "create");
    pool.refill(img);
    await new Promise((r) => setTimeout(r, 400));
    expect(pool.stats()).toEqual({ [img.id]: 0 });
    ticket.release();
    await pool.settled();
    expect(pool.stats()).toEqual({ [img.id]: 1 });
  });
});

describe("warm disk pool: copies of a golden snapshot's disks", () => {
  function snapshotFiles(w: ReturnType<typeof world>, id: string) {
    // The unit world's copy is a no-op; these tests read what was copied.
    w.d.files.copy = async (src, dst) => copyFileSync(src, dst);
    const dir = join(w.poolDir, "..", `snap-${id}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "rootfs.ext4"), `golden rootfs ${id}`);
    writeFileSync(join(dir, "work.ext4"), `golden work ${id}`);
    return { id, rootfs: join(dir, "rootfs.ext4"), work: join(dir, "work.ext4"), workGib: 2, hostPublicKey: `ssh-ed25519 GOLDEN ${id}` };
  }

  it("keeps snapshot sets apart from cold sets: each kind has its own disk_pool_size and its own take", async () => {
    const w = world({ size: 1 });
    const img = w.image("deb");
    const s1 = snapshotFiles(w, "s1");
    w.d.diskPool.refill(img);
    w.d.diskPool.refill(img, s1);
    await w.d.diskPool.settled();
    expect(w.d.diskPool.stats()).toEqual({ [img.id]: 2 });
    // A cold create never gets the snapshot's copies, whatever their size.
    expect(w.d.diskPool.take(img, 2)).toBeUndefined();
    const set = w.d.diskPool.takeSnapshot(img, "s1")!;
    expect(set.hostPublicKey).toBe("ssh-ed25519 GOLDEN s1");
    // Byte for byte the snapshot's disks: no identity is injected into a restore's copies.
    expect(readFileSync(join(set.dir, "rootfs.ext4"), "utf8")).toBe("golden rootfs s1");
    expect(readFileSync(join(set.dir, "work.ext4"), "utf8")).toBe("golden work s1");
    expect(w.d.diskPool.takeSnapshot(img, "s1")).toBeUndefined();
    expect(w.d.diskPool.take(img, w.cfg.config.work_disk_gib)).toBeDefined();
  });

  it("copies of a replaced snapshot are discarded, never handed out; adopt keeps complete ones", async () => {
    const w = world({ size: 1 });
    const img = w.image("deb");
    w.d.diskPool.refill(img, snapshotFiles(w, "s1"));
    await w.d.diskPool.settled();
    // A restart keeps the set (whether s1 is still current is for takeSnapshot to say).
    const pool = w.newPool(1);
    await pool.adopt(w.store.listImages());
    expect(pool.stats()).toEqual({ [img.id]: 1 });
    expect(pool.takeSnapshot(img, "s2")).toBeUndefined();
    expect(pool.stats()).toEqual({ [img.id]: 0 });
    await new Promise((r) => setTimeout(r, 50)); // the discard runs in the background
    expect(readdirSync(join(w.poolDir, img.id))).toEqual([]);
    expect(w.logs.some((l) => l.msg === "discarding warm disks" && l.why === "snapshot s1 was replaced by s2")).toBe(true);
  });
});
