import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openGuestPort } from "../../src/app/guest-connect.js";
import { snapshotImage } from "../../src/app/image-snapshot.js";
import { ImageService } from "../../src/app/images.js";
import { readSnapshot, snapshotDirOf } from "../../src/app/snapshot-record.js";
import type { BangerError } from "../../src/domain/errors.js";
import { leases } from "../helpers/db.js";
import { world } from "../helpers/app-world.js";
import { fakeSnaps, snapWorld } from "../helpers/snap-world.js";

function nothingLeft(w: ReturnType<typeof world>) {
  expect(w.store.listVms()).toEqual([]);
  expect(leases(w.store)).toEqual([]);
  expect(w.held.procs.size + w.held.taps.size + w.held.nat.size).toBe(0);
  expect(readdirSync(w.cfg.paths.vmsDir)).toEqual([]);
}

describe("image snapshot", () => {
  it("boots a hidden golden VM, records the snapshot beside its files and tears the VM down", async () => {
    const w = snapWorld();
    const injected: string[] = [];
    const inject = w.d.disks.inject.bind(w.d.disks);
    w.d.disks.inject = (img, files) => {
      injected.push(...files.map((f) => f.path));
      return inject(img, files);
    };
    const s = await snapshotImage(w.d, "deb-1");
    // The golden VM gets a service password of its own (opencode will not start without one);
    // it goes with the golden VM, and every clone writes its own at re-identity.
    expect(injected).toContain("/etc/banger/opencode.env");
    expect(readdirSync(w.d.config.secretsDir)).toEqual([]);
    expect(s.stages.map((t) => t.stage)).toEqual([
      "lease-ip",
      "tap",
      "rootfs",
      "work-disk",
      "inject",
      "spawn-vmm",
      "configure",
      "start",
      "wait-ssh",
      "wait-services",
      "channel-check",
      "quiesce",
      "snapshot",
      "verify",
    ]);
    const dir = snapshotDirOf(w.d.config.imagesDir, "img1");
    expect(s.dir).toBe(dir);
    expect(readdirSync(dir).sort()).toEqual(["rootfs.ext4", "snapshot.json", "state.mig", "work.ext4"]);
    const stored = (await readSnapshot(w.d.files, dir))!;
    expect(stored.record.files.map((f) => f.role).sort()).toEqual(["rootfs", "state", "work"]);
    expect(stored.hostPublicKey).toBe("ssh-ed25519 HOSTKEY banger");
    // No NAT for the golden VM; the clone's kernel command line is the golden one.
    expect(stored.bootArgs).toMatch(/ip=172\.30\.0\.2:/);
    nothingLeft(w);
    // Quiesce drops the page cache, then one more login reads back what every clone runs first.
    expect(w.execs).toEqual([
      expect.stringMatching(/^sync && echo 3 > \/proc\/sys\/vm\/drop_caches/),
      "if [ -x /usr/local/sbin/banger-agent ]; then /usr/local/sbin/banger-agent --help >/dev/null; else perl -e 1; fi && ip link show lo >/dev/null",
    ]);
    expect(readdirSync(join(w.d.config.imagesDir, "img1")).filter((n) => n.includes(".part"))).toEqual([]);
  });

  it("a failed snapshot leaves nothing, and an older snapshot stays", async () => {
    const ok = snapWorld();
    await snapshotImage(ok.d, "deb-1");
    const dir = snapshotDirOf(ok.d.config.imagesDir, "img1");
    const before = (await readSnapshot(ok.d.files, dir))!.record.id;
    ok.d.snapshots = () => fakeSnaps(true);
    const err = (await snapshotImage(ok.d, "deb-1").catch((e: unknown) => e)) as BangerError;
    expect(err.stage).toBe("snapshot");
    expect(err.message).toMatch(/^snapshot of image deb-1 failed at stage snapshot: snapshot migration failed/);
    nothingLeft(ok);
    expect((await readSnapshot(ok.d.files, dir))!.record.id).toBe(before);
    expect(readdirSync(join(ok.d.config.imagesDir, "img1")).filter((n) => n.includes(".part"))).toEqual([]);
  });

  it("an image whose guest has no channel is refused at channel-check, leaving nothing", async () => {
    const w = snapWorld({ channel: false });
    const err = (await snapshotImage(w.d, "deb-1").catch((e: unknown) => e)) as BangerError;
    expect(err.stage).toBe("channel-check");
    expect(err.hint).toMatch(/banger-agent/);
    nothingLeft(w);
    expect(existsSync(snapshotDirOf(w.d.config.imagesDir, "img1"))).toBe(false);
  });

  it("a VMM without a snapshot driver is refused before anything is acquired", async () => {
    const w = world();
    await expect(snapshotImage(w.d, "deb-1")).rejects.toMatchObject({ code: "BAD_REQUEST" });
    nothingLeft(w);
  });
});

describe("daemon start after a crash mid-snapshot", () => {
  it("removes the unfinished snapshot.part-* directory and keeps the finished snapshot", async () => {
    const w = snapWorld();
    const imgDir = join(w.d.config.imagesDir, "img1");
    mkdirSync(join(imgDir, "snapshot.part-1234abcd"), { recursive: true });
    mkdirSync(join(imgDir, "snapshot"));
    await new ImageService(w.d).reconcileQuick();
    expect(readdirSync(imgDir)).toEqual(["snapshot"]);
  });
});

describe("connect while creating", () => {
  it("admits a creating VM only when asked (re-identity), never by default", async () => {
    const w = snapWorld();
    const now = new Date().toISOString();
    w.store.insertVm({
      id: "v1",
      name: "c1",
      imageId: "img1",
      imageName: "deb-1",
      state: "creating",
      vmm: "qemu",
      vcpus: 1,
      memoryMib: 512,
      workDiskGib: 1,
      nat: false,
      dir: join(w.cfg.paths.vmsDir, "v1"),
      vsockCid: 3,
      workSeedFallback: false,
      createdAt: now,
      updatedAt: now,
    });
    await expect(openGuestPort(w.d, "c1", "22")).rejects.toMatchObject({ code: "VM_NOT_RUNNING" });
    const opened = await openGuestPort(w.d, "c1", "22", undefined, { creating: true });
    expect(opened.via).toBe("virtio-serial");
  });
});
