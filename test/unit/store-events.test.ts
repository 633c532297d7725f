import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MIGRATIONS, migrate } from "../../src/adapters/sqlite/migrations.js";
import { SqliteStore } from "../../src/adapters/sqlite/store.js";
import type { LifecycleEvent } from "../../src/domain/types.js";

let dir: string;
let file: string;
const opened: SqliteStore[] = [];

function open(): SqliteStore {
  const s = SqliteStore.open(file);
  opened.push(s);
  return s;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "banger-events-"));
  file = join(dir, "banger.db");
});

afterEach(() => {
  for (const s of opened.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

const NOW = "2026-01-01T00:00:00.000Z";

function seedImageAndVms(db: Database.Database, ...names: string[]): void {
  db.prepare("INSERT INTO images (id, name, boot_args, guest_json, created_at) VALUES ('img', 'deb', 'x', '{}', ?)").run(NOW);
  for (const n of names) {
    db.prepare(
      `INSERT INTO vms (id, name, image_id, image_name, state, vmm, vcpus, memory_mib, work_disk_gib, nat, dir, work_seed_fallback, created_at, updated_at)
                VALUES (?, ?, 'img', 'deb', 'running', 'qemu', 1, 128, 1, 0, '/x', 0, ?, ?)`,
    ).run(`vm-${n}`, n, NOW, NOW);
  }
}

function ev(vm: string, opId: number, op: string, stage: string, outcome: LifecycleEvent["outcome"] = "ok"): LifecycleEvent {
  return { vmId: `vm-${vm}`, vmName: vm, opId, op, stage, startedAt: NOW, durationMs: 1, outcome };
}

/** A store with VMs a and b (rows written the way bangerd's create would). */
function storeWithVms(): SqliteStore {
  const s = open();
  s.insertImage({ id: "img", name: "deb", bootArgs: "x", guest: { os: "debian", services: [] }, artifacts: [] });
  for (const n of ["a", "b"]) {
    s.insertVm({
      id: `vm-${n}`,
      name: n,
      imageId: "img",
      imageName: "deb",
      state: "running",
      vmm: "qemu",
      vcpus: 1,
      memoryMib: 128,
      workDiskGib: 1,
      nat: false,
      dir: "/x",
      workSeedFallback: false,
      createdAt: NOW,
      updatedAt: NOW,
    });
  }
  return s;
}

describe("lifecycle event retention", () => {
  it("migrates a version 1 database: keeps its rows, groups them into operations, drops a deleted VM's", () => {
    mkdirSync(dir, { recursive: true });
    const raw = new Database(file);
    migrate(
      raw,
      file,
      MIGRATIONS.filter((m) => m.version === 1),
    );
    seedImageAndVms(raw, "a", "b");
    const insert = raw.prepare("INSERT INTO lifecycle_events (vm_id, vm_name, op, stage, started_at, duration_ms, outcome) VALUES (?, ?, ?, ?, ?, 1, ?)");
    const rows: [string, string, string, string][] = [
      ["a", "create", "lease-ip", "ok"], //  1  op 1
      ["b", "create", "lease-ip", "ok"], //  2  op 2 (another VM, interleaved)
      ["a", "create", "total", "ok"], //     3  op 1
      ["a", "start", "tap", "ok"], //        4  op 4
      ["a", "start", "spawn-vmm", "failed"], // 5  op 4
      ["a", "start", "undo:tap", "undone"], // 6  op 4
      ["a", "start", "tap", "ok"], //        7  op 7: a retry after a failure is a new operation
      ["a", "start", "total", "ok"], //      8  op 7
      ["a", "start", "tap", "ok"], //        9  op 9: same op name right after a total
      ["a", "start", "total", "ok"], //     10  op 9
      ["a", "stop", "vmm-stop", "ok"], //   11  op 11
      ["gone", "create", "lease-ip", "ok"], // 12 VM no longer exists
    ];
    for (const [vm, op, stage, outcome] of rows) insert.run(`vm-${vm}`, vm, op, stage, NOW, outcome);
    raw.close();

    const s = open();
    expect(s.events("vm-a").map((e) => [e.op, e.stage, e.opId])).toEqual([
      ["create", "lease-ip", 1],
      ["create", "total", 1],
      ["start", "tap", 4],
      ["start", "spawn-vmm", 4],
      ["start", "undo:tap", 4],
      ["start", "tap", 7],
      ["start", "total", 7],
      ["start", "tap", 9],
      ["start", "total", 9],
      ["stop", "vmm-stop", 11],
    ]);
    expect(s.events("vm-b").map((e) => e.opId)).toEqual([2]);
    expect(s.events("vm-gone")).toEqual([]);
    // New operations sort after every migrated one.
    expect(s.nextOpId()).toBe(12);
    expect(s.nextOpId()).toBe(13);
  });

  it("hands out increasing operation ids that survive a reopen", () => {
    const s = open();
    const first = s.nextOpId();
    expect(s.nextOpId()).toBe(first + 1);
    s.close();
    expect(open().nextOpId()).toBe(first + 2);
  });

  it("prunes to exactly the last N operations of one VM and leaves other VMs alone", () => {
    const s = storeWithVms();
    for (let op = 1; op <= 5; op++) {
      s.addEvent(ev("a", op * 10, "start", "tap"));
      s.addEvent(ev("a", op * 10, "start", "total"));
    }
    s.addEvent(ev("b", 1, "create", "total"));
    expect(s.pruneEvents("vm-a", 7)).toBe(0);
    expect(s.pruneEvents("vm-a", 2)).toBe(6);
    expect(s.events("vm-a").map((e) => e.opId)).toEqual([40, 40, 50, 50]);
    expect(s.pruneEvents("vm-a", 2)).toBe(0);
    expect(s.pruneEvents("vm-a", 1)).toBe(2);
    expect(s.events("vm-a").map((e) => e.opId)).toEqual([50, 50]);
    expect(s.events("vm-b")).toHaveLength(1);
    expect(s.pruneEvents("vm-none", 1)).toBe(0);
  });

  it("deletes a VM's events with the VM, and drops events recorded after it is gone", () => {
    const s = storeWithVms();
    s.addEvent(ev("a", 1, "create", "total"));
    s.addEvent(ev("b", 2, "create", "total"));
    s.deleteVm("vm-a");
    expect(s.events("vm-a")).toEqual([]);
    // A create's rollback records its last undo after that undo removed the VM row.
    s.addEvent(ev("a", 1, "create", "undo:vm-record", "undone"));
    expect(s.events("vm-a")).toEqual([]);
    expect(s.events("vm-b")).toHaveLength(1);
  });
});
