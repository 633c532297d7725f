import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LATEST_VERSION, MIGRATIONS, migrate } from "../../src/adapters/sqlite/migrations.js";
import { SqliteStore } from "../../src/adapters/sqlite/store.js";
import { imageDigest } from "../../src/domain/image-digest.js";
import { sha256Hex } from "../../src/adapters/sqlite/hash.js";
import { BangerError } from "../../src/domain/errors.js";
import type { Artifact, LifecycleEvent, Vm } from "../../src/domain/types.js";
import type { NewImage } from "../../src/ports/store.js";
import { aliasTarget, leases } from "../helpers/db.js";

const T0 = new Date("2026-01-02T03:04:05.000Z");

let dir: string;
let file: string;
let clock: Date;
const opened: SqliteStore[] = [];

function open(): SqliteStore {
  const s = SqliteStore.open(file, { now: () => clock });
  opened.push(s);
  return s;
}

function artifacts(id: string): Artifact[] {
  return [
    { role: "rootfs", path: `/images/${id}/rootfs.ext4`, sha256: "c".repeat(64), sizeBytes: 3 * 2 ** 30 },
    { role: "kernel", path: `/images/${id}/vmlinux`, sha256: "a".repeat(64), sizeBytes: 12_345_678 },
    { role: "initrd", path: `/images/${id}/initrd.img`, sha256: "b".repeat(64), sizeBytes: 4_567 },
  ];
}

function newImage(name: string, extra: Partial<NewImage> = {}): NewImage {
  const id = `img-${name}`;
  return {
    id,
    name,
    bootArgs: "console=ttyS0 root=/dev/vda",
    guest: {
      os: "debian",
      services: [
        { name: "ssh", port: 22 },
        { name: "web", port: 8080, timeoutMs: 90_000 },
      ],
    },
    artifacts: artifacts(id),
    ...extra,
  };
}

function newVm(name: string, imageId: string, extra: Partial<Vm> = {}): Vm {
  return {
    id: `vm-${name}`,
    name,
    imageId,
    imageName: imageId.replace(/^img-/, ""),
    state: "creating",
    vmm: "qemu",
    vcpus: 2,
    memoryMib: 1024,
    workDiskGib: 8,
    nat: false,
    dir: `/vms/vm-${name}`,
    workSeedFallback: true,
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z",
    ...extra,
  };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BangerError);
    return (e as BangerError).code;
  }
  return undefined;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "banger-store-"));
  file = join(dir, "state", "banger.db");
  clock = T0;
});

afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("SqliteStore images", () => {
  it("round-trips an image with artifacts (in role order) and aliases", () => {
    const s = open();
    const inserted = s.insertImage(newImage("deb", { defaultVcpus: 4, defaultMemoryMib: 2048 }));
    s.setAlias("stable", inserted.id);
    s.setAlias("debian", inserted.id);
    const expected = {
      id: "img-deb",
      name: "deb",
      status: "ok",
      bootArgs: "console=ttyS0 root=/dev/vda",
      defaultVcpus: 4,
      defaultMemoryMib: 2048,
      guest: {
        os: "debian",
        services: [
          { name: "ssh", port: 22 },
          { name: "web", port: 8080, timeoutMs: 90_000 },
        ],
      },
      artifacts: [
        { role: "kernel", path: "/images/img-deb/vmlinux", sha256: "a".repeat(64), sizeBytes: 12_345_678 },
        { role: "initrd", path: "/images/img-deb/initrd.img", sha256: "b".repeat(64), sizeBytes: 4_567 },
        { role: "rootfs", path: "/images/img-deb/rootfs.ext4", sha256: "c".repeat(64), sizeBytes: 3 * 2 ** 30 },
      ],
      aliases: ["debian", "stable"],
      createdAt: T0.toISOString(),
      digest: imageDigest({ guest: newImage("deb").guest, bootArgs: "console=ttyS0 root=/dev/vda", artifacts: artifacts("deb") }, sha256Hex),
      lastUsedAt: T0.toISOString(),
    };
    // The same boot set under another id and name (paths differ too) has the same digest, found by it.
    s.insertImage(newImage("deb-copy", { id: "img-zcopy" }));
    expect(s.getImage(expected.digest)?.name).toBe("deb");
    expect(s.getImage("deb-copy")?.digest).toBe(expected.digest);
    s.deleteImage("img-zcopy");
    expect(inserted).toStrictEqual({ ...expected, aliases: [] });
    expect(s.getImage("deb")).toStrictEqual(expected);
    expect(s.getImage("stable")).toStrictEqual(expected);
    expect(s.getImageById("img-deb")).toStrictEqual(expected);
    expect(s.listImages()).toStrictEqual([expected]);
    expect(s.getImage("nope")).toBeUndefined();
    expect(s.getImageById("nope")).toBeUndefined();
    s.close();
    // The data is on disk, not in a connection cache.
    expect(open().getImage("debian")).toStrictEqual(expected);
  });

  it("resolves an exact image name before an alias of the same spelling", () => {
    const s = open();
    const a = s.insertImage(newImage("alpha"));
    const b = s.insertImage(newImage("beta"));
    s.setAlias("alpha", b.id);
    expect(s.getImage("alpha")?.id).toBe(a.id);
    expect(aliasTarget(s, "alpha")).toBe(b.id);
  });

  it("moves an alias from one image to another", () => {
    const s = open();
    const a = s.insertImage(newImage("a"));
    const b = s.insertImage(newImage("b"));
    s.setAlias("stable", a.id);
    expect(s.getImage("stable")?.name).toBe("a");
    s.setAlias("stable", b.id);
    expect(aliasTarget(s, "stable")).toBe(b.id);
    expect(s.getImage("stable")?.name).toBe("b");
    expect(s.getImageById(a.id)?.aliases).toEqual([]);
    expect(s.getImageById(b.id)?.aliases).toEqual(["stable"]);
    expect(aliasTarget(s, "unknown")).toBeUndefined();
    expect(codeOf(() => s.setAlias("stable", "img-missing"))).toBe("IMAGE_NOT_FOUND");
    expect(aliasTarget(s, "stable")).toBe(b.id);
  });

  it("refuses a second image with the same name, and rolls back a bad artifact list", () => {
    const s = open();
    s.insertImage(newImage("deb"));
    expect(codeOf(() => s.insertImage(newImage("deb", { id: "img-other" })))).toBe("IMAGE_EXISTS");
    expect(codeOf(() => s.insertImage(newImage("deb2", { id: "img-deb" })))).toBe("IMAGE_EXISTS");
    const dup = newImage("dup");
    dup.artifacts = [...dup.artifacts, { ...dup.artifacts[0] }];
    expect(codeOf(() => s.insertImage(dup))).toBe("INVALID_ARTIFACT");
    expect(s.getImage("dup")).toBeUndefined();
    expect(s.listImages().map((i) => i.name)).toEqual(["deb"]);
  });

  it("records and clears a broken status", () => {
    const s = open();
    const img = s.insertImage(newImage("deb"));
    s.setImageStatus(img.id, "broken", "rootfs.ext4 missing");
    expect(s.getImage("deb")).toMatchObject({ status: "broken", statusDetail: "rootfs.ext4 missing" });
    s.setImageStatus(img.id, "ok");
    const back = s.getImage("deb")!;
    expect(back.status).toBe("ok");
    expect("statusDetail" in back).toBe(false);
    expect(codeOf(() => s.setImageStatus("img-missing", "ok"))).toBe("IMAGE_NOT_FOUND");
  });

  it("deleteImage: IMAGE_IN_USE while a VM or an alias references it, then removes it with its artifacts", () => {
    const s = open();
    const img = s.insertImage(newImage("deb"));
    const other = s.insertImage(newImage("other"));
    s.insertVm(newVm("box", img.id));
    s.setAlias("stable", img.id);

    let err: unknown;
    try {
      s.deleteImage(img.id);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BangerError);
    expect((err as BangerError).code).toBe("IMAGE_IN_USE");
    expect((err as BangerError).message).toContain("box");
    expect(s.getImage("deb")?.artifacts).toHaveLength(3);

    s.deleteVm("vm-box");
    expect(codeOf(() => s.deleteImage(img.id))).toBe("IMAGE_IN_USE");
    s.setAlias("stable", other.id);
    s.deleteImage(img.id);
    expect(s.getImageById(img.id)).toBeUndefined();
    s.deleteImage(img.id); // already gone: no-op

    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.prepare("SELECT COUNT(*) AS n FROM image_artifacts WHERE image_id = ?").get(img.id)).toEqual({ n: 0 });
      expect(raw.prepare("SELECT COUNT(*) AS n FROM image_artifacts").get()).toEqual({ n: 3 });
    } finally {
      raw.close();
    }
  });
});

describe("SqliteStore VMs", () => {
  it("creates, reads, patches and deletes a VM", () => {
    const s = open();
    const img = s.insertImage(newImage("deb"));
    const vm = newVm("box", img.id);
    s.insertVm(vm);
    expect(s.getVm("box")).toStrictEqual(vm);
    expect(s.nameTaken("box")).toBe(true);
    expect(s.nameTaken("other")).toBe(false);

    clock = new Date("2026-02-03T04:05:06.000Z");
    const running = s.updateVm(vm.id, { state: "running", pid: 4242, pidStart: 987654, tap: "tap-banger0", ip: "172.30.0.2", nat: true, lastError: "x" });
    expect(running).toStrictEqual({
      ...vm,
      state: "running",
      pid: 4242,
      pidStart: 987654,
      tap: "tap-banger0",
      ip: "172.30.0.2",
      nat: true,
      lastError: "x",
      updatedAt: "2026-02-03T04:05:06.000Z",
    });
    expect(s.getVm("box")).toStrictEqual(running);

    // `undefined` clears optional fields, and leaves required ones alone.
    const stopped = s.updateVm(vm.id, {
      state: "stopped",
      pid: undefined,
      pidStart: undefined,
      tap: undefined,
      vcpus: undefined,
      updatedAt: "2026-03-01T00:00:00.000Z",
    });
    expect(stopped).toStrictEqual({ ...vm, state: "stopped", ip: "172.30.0.2", nat: true, lastError: "x", updatedAt: "2026-03-01T00:00:00.000Z" });
    expect("pid" in stopped).toBe(false);

    expect(codeOf(() => s.updateVm("vm-missing", { state: "running" }))).toBe("VM_NOT_FOUND");
    s.deleteVm(vm.id);
    expect(s.getVm("box")).toBeUndefined();
    expect(s.nameTaken("box")).toBe(false);
    s.deleteVm(vm.id); // already gone: no-op
  });

  it("enforces unique names, existing images, and lists by image", () => {
    const s = open();
    const a = s.insertImage(newImage("a"));
    const b = s.insertImage(newImage("b"));
    s.insertVm(newVm("one", a.id, { createdAt: "2026-01-01T00:00:01.000Z" }));
    s.insertVm(newVm("two", b.id, { createdAt: "2026-01-01T00:00:02.000Z" }));
    s.insertVm(newVm("three", a.id, { createdAt: "2026-01-01T00:00:03.000Z" }));
    expect(codeOf(() => s.insertVm(newVm("one", a.id, { id: "vm-other" })))).toBe("VM_EXISTS");
    expect(codeOf(() => s.insertVm(newVm("four", "img-missing")))).toBe("IMAGE_NOT_FOUND");
    expect(s.listVms().map((v) => v.name)).toEqual(["one", "two", "three"]);
    expect(s.vmsUsingImage(a.id).map((v) => v.name)).toEqual(["one", "three"]);
    expect(s.vmsUsingImage("img-missing")).toEqual([]);
  });
});

describe("SqliteStore leases and vsock CIDs", () => {
  const candidates = ["10.0.0.2", "10.0.0.3", "10.0.0.4"];

  function seedVms(s: SqliteStore, n: number): string[] {
    const img = s.getImage("deb") ?? s.insertImage(newImage("deb"));
    return Array.from({ length: n }, (_, i) => {
      s.insertVm(newVm(`v${i}`, img.id));
      return `vm-v${i}`;
    });
  }

  it("hands out each candidate once until the list runs out; release and delete free an address", () => {
    const s = open();
    const [a, b, c, d] = seedVms(s, 4);
    expect(s.allocateLease(a, candidates)).toBe("10.0.0.2");
    expect(s.allocateLease(b, candidates)).toBe("10.0.0.3");
    expect(s.allocateLease(a, candidates)).toBe("10.0.0.2"); // same VM asks again: same lease
    expect(s.allocateLease(c, candidates)).toBe("10.0.0.4");
    expect(s.allocateLease(d, candidates)).toBeUndefined();
    expect(leases(s)).toEqual([
      { ip: "10.0.0.2", vmId: a },
      { ip: "10.0.0.3", vmId: b },
      { ip: "10.0.0.4", vmId: c },
    ]);
    s.releaseLease(b);
    expect(s.allocateLease(d, candidates)).toBe("10.0.0.3");
    s.deleteVm(a);
    expect(leases(s).map((l) => l.ip)).toEqual(["10.0.0.3", "10.0.0.4"]);
    expect(codeOf(() => s.allocateLease("vm-missing", candidates))).toBe("VM_NOT_FOUND");
  });

  it("reads candidates lazily, so a huge subnet generator is fine", () => {
    const s = open();
    const [a, b] = seedVms(s, 2);
    function* endless(): Generator<string> {
      for (let i = 2; ; i++) yield `10.1.${Math.floor(i / 256)}.${i % 256}`;
    }
    expect(s.allocateLease(a, endless())).toBe("10.1.0.2");
    expect(s.allocateLease(b, endless())).toBe("10.1.0.3");
  });

  it("two connections on one file never hand out the same address", () => {
    const s1 = open();
    const s2 = open();
    const ids = seedVms(s1, 20);
    const pool = Array.from({ length: 8 }, (_, i) => `192.168.50.${i + 2}`);
    const got: (string | undefined)[] = ids.map((id, i) => (i % 2 === 0 ? s1 : s2).allocateLease(id, pool));
    const handed = got.filter((ip): ip is string => ip !== undefined);
    expect(handed).toHaveLength(pool.length);
    expect(new Set(handed).size).toBe(pool.length);
    expect(got.slice(pool.length).every((ip) => ip === undefined)).toBe(true);
    expect(leases(s2)).toEqual(leases(s1));
    expect(leases(s1)).toHaveLength(pool.length);
  });

  it("allocates the lowest free vsock CID from 3 and reuses one after its VM is deleted", () => {
    const s = open();
    const [a, b, c, d, e] = seedVms(s, 5);
    expect([a, b, c].map((id) => s.allocateVsockCid(id))).toEqual([3, 4, 5]);
    expect(s.allocateVsockCid(b)).toBe(4);
    s.deleteVm(b);
    expect(s.allocateVsockCid(d)).toBe(4);
    expect(s.allocateVsockCid(e)).toBe(6);
    s.deleteVm(a);
    s.insertVm(newVm("f", "img-deb"));
    expect(s.allocateVsockCid("vm-f")).toBe(3);
    expect(codeOf(() => s.allocateVsockCid("vm-missing"))).toBe("VM_NOT_FOUND");
    // A second connection sees the same allocations.
    const s2 = open();
    const g = "vm-g";
    s2.insertVm(newVm("g", "img-deb", { id: g }));
    expect(s2.allocateVsockCid(g)).toBe(7);
  });
});

describe("SqliteStore locking", () => {
  it("turns a lock held past the busy timeout into TIMEOUT, and works again once it is released", () => {
    const s = SqliteStore.open(file, { busyTimeoutMs: 200 });
    opened.push(s);
    const img = s.insertImage(newImage("deb"));
    s.insertVm(newVm("box", img.id));
    const raw = new Database(file);
    try {
      raw.exec("BEGIN IMMEDIATE");
      let err: unknown;
      try {
        s.allocateLease("vm-box", ["10.0.0.2"]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BangerError);
      expect((err as BangerError).code).toBe("TIMEOUT");
      expect((err as BangerError).hint).toMatch(/another process/);
      // WAL: reads are not blocked by the writer.
      expect(s.getVm("box")?.name).toBe("box");
      raw.exec("ROLLBACK");
      expect(s.allocateLease("vm-box", ["10.0.0.2"])).toBe("10.0.0.2");
    } finally {
      if (raw.inTransaction) raw.exec("ROLLBACK");
      raw.close();
    }
  });
});

describe("SqliteStore lifecycle events", () => {
  it("returns a VM's events in recording order and drops them with the VM", () => {
    const s = open();
    const img = s.insertImage(newImage("deb"));
    s.insertVm(newVm("a", img.id));
    s.insertVm(newVm("b", img.id));
    const ev = (vm: string, stage: string, outcome: LifecycleEvent["outcome"], startedAt: string, detail?: string): LifecycleEvent => ({
      vmId: `vm-${vm}`,
      vmName: vm,
      opId: 1,
      op: "create",
      stage,
      startedAt,
      durationMs: 12.34,
      outcome,
      ...(detail ? { detail } : {}),
    });
    const recorded = [
      ev("a", "lease-ip", "ok", "2026-01-01T00:00:01.000Z", "10.0.0.2"),
      ev("b", "lease-ip", "ok", "2026-01-01T00:00:01.500Z"),
      ev("a", "tap", "failed", "2026-01-01T00:00:02.000Z", "boom"),
      // An undo recorded later may carry an earlier start time; recording order still wins.
      ev("a", "lease-ip", "undone", "2026-01-01T00:00:00.500Z"),
    ];
    for (const e of recorded) s.addEvent(e);
    expect(s.events("vm-a")).toStrictEqual([recorded[0], recorded[2], recorded[3]]);
    expect(s.events("vm-b")).toStrictEqual([recorded[1]]);
    s.deleteVm("vm-a");
    expect(s.events("vm-a")).toEqual([]);
    expect(s.events("vm-b")).toStrictEqual([recorded[1]]);
    expect(s.events("vm-none")).toEqual([]);
  });
});

describe("SqliteStore schema and migrations", () => {
  it("opens in WAL mode with user_version at the latest migration, twice without re-running anything", () => {
    const s = open();
    s.insertImage(newImage("deb"));
    s.close();
    const again = open();
    expect(again.getImage("deb")?.name).toBe("deb");
    again.close();
    const raw = new Database(file);
    try {
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(raw.pragma("user_version", { simple: true })).toBe(LATEST_VERSION);
      expect(LATEST_VERSION).toBe(MIGRATIONS[MIGRATIONS.length - 1].version);
    } finally {
      raw.close();
    }
  });

  it("refuses a database written by a newer banger with SCHEMA_TOO_NEW", () => {
    open().close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${LATEST_VERSION + 3}`);
    raw.close();
    let err: unknown;
    try {
      open();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BangerError);
    const be = err as BangerError;
    expect(be.code).toBe("SCHEMA_TOO_NEW");
    expect(be.message).toBe(`database ${file} has schema version ${LATEST_VERSION + 3} but this banger knows up to ${LATEST_VERSION}`);
    expect(be.hint).toBe("upgrade banger, or point state_dir at a fresh directory");
  });

  it("applies a new migration exactly once and rolls back a failing one as a whole", () => {
    open().close();
    const raw = new Database(file);
    try {
      const next = LATEST_VERSION + 1;
      const withNext = [...MIGRATIONS, { version: next, sql: "ALTER TABLE vms ADD COLUMN note TEXT;" }];
      expect(migrate(raw, file, withNext)).toBe(next);
      // A re-run would fail with "duplicate column" if the step were applied again.
      expect(migrate(raw, file, withNext)).toBe(next);
      const cols = (raw.pragma("table_info(vms)") as { name: string }[]).map((c) => c.name);
      expect(cols.filter((c) => c === "note")).toHaveLength(1);

      const broken = [...withNext, { version: next + 1, sql: "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);" }];
      expect(() => migrate(raw, file, broken)).toThrow(/no_such_table/);
      expect(raw.pragma("user_version", { simple: true })).toBe(next);
      expect(raw.prepare("SELECT name FROM sqlite_master WHERE name = 'half'").get()).toBeUndefined();
    } finally {
      raw.close();
    }
    // The shipped code now sees a newer schema than it knows.
    expect(codeOf(() => open())).toBe("SCHEMA_TOO_NEW");
  });

  it("migration 9 rebuilds vms keeping every row, column and reference; role 'pool' is accepted", () => {
    const s = open();
    s.insertImage(newImage("deb"));
    s.insertVm(newVm("golden", "img-deb", { role: "builder", ownerUid: 1000, ownerName: "ann", bootSource: "cold: test" }));
    s.insertVm(newVm("b", "img-deb"));
    s.allocateLease("vm-golden", ["172.30.0.2"]);
    s.addPeers("vm-golden", ["vm-b"]);
    s.addForward({ vmId: "vm-b", hostAddress: "127.0.0.1", hostPort: 18080, guestPort: 80 });
    const before = s.listVms();
    s.close();
    // Run the rebuild again on a database holding rows, as an upgrade from version 8 would.
    const raw = new Database(file);
    try {
      raw.pragma("user_version = 8");
      // Only the rebuild: the later steps' columns are already there.
      expect(
        migrate(
          raw,
          file,
          MIGRATIONS.filter((m) => m.version <= 9),
        ),
      ).toBe(9);
      raw.pragma(`user_version = ${LATEST_VERSION}`);
    } finally {
      raw.close();
    }
    const after = open();
    expect(after.listVms()).toEqual(before);
    expect(leases(after)).toEqual([{ ip: "172.30.0.2", vmId: "vm-golden" }]);
    after.insertVm(newVm("pool-1", "img-deb", { role: "pool" }));
    expect(after.getVm("pool-1")?.role).toBe("pool");
    // References from other tables still cascade to the rebuilt table.
    after.deleteVm("vm-b");
    expect(after.peerPairs()).toEqual([]);
    expect(after.listForwards()).toEqual([]);
  });

  it("reports a file that is not a database as an error with a hint", () => {
    const bad = join(dir, "bad.db");
    writeFileSync(bad, "this is not an SQLite file, only text long enough to cover a header. ".repeat(20));
    let err: unknown;
    try {
      SqliteStore.open(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BangerError);
    expect((err as BangerError).code).toBe("INTERNAL");
    expect((err as BangerError).hint).toMatch(/move it aside/);
  });
});

describe("migration 10: image digests", () => {
  it("an image registered before it gets its digest at open, computed from its rows; a later use moves last_used_at", () => {
    const s = open();
    s.insertImage(newImage("old"));
    const want = s.getImage("old")?.digest;
    s.close();
    const raw = new Database(file);
    try {
      // As a version-9 database left it: no digest, no use time.
      raw.prepare("UPDATE images SET digest = NULL, last_used_at = NULL").run();
      expect(raw.prepare("SELECT digest FROM images").get()).toEqual({ digest: null });
      expect(() => raw.prepare("UPDATE images SET digest = 'md5:x'").run()).toThrow(/CHECK/);
    } finally {
      raw.close();
    }
    clock = new Date(T0.getTime() + 60_000);
    const again = open();
    const img = again.getImage("old");
    expect(img?.digest).toBe(want);
    expect(img?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(img?.lastUsedAt).toBe(T0.toISOString());
    again.touchImage("img-old");
    expect(again.getImage("old")?.lastUsedAt).toBe(clock.toISOString());
  });
});
