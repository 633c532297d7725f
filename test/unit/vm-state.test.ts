import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/adapters/sqlite/store.js";
import { MIGRATIONS, migrate } from "../../src/adapters/sqlite/migrations.js";
import Database from "better-sqlite3";
import { assertTransition, canTransition, type VmState } from "../../src/domain/vm-state.js";
import type { Vm } from "../../src/domain/types.js";
import { leases } from "../helpers/db.js";

const STATES: VmState[] = ["creating", "starting", "running", "stopping", "stopped", "deleting", "failed"];

// Written out here rather than imported, so a change to the machine has to change this test too.
const LEGAL = new Set([
  "creating>running",
  "creating>failed",
  "creating>deleting",
  "starting>running",
  "starting>stopped",
  "starting>failed",
  "running>stopping",
  "running>stopped",
  "running>deleting",
  "running>failed",
  "stopping>stopped",
  "stopping>failed",
  "stopped>starting",
  "stopped>deleting",
  "failed>deleting",
  "deleting>failed",
]);

describe("VM state machine (domain)", () => {
  for (const from of STATES) {
    for (const to of STATES) {
      const legal = LEGAL.has(`${from}>${to}`);
      it(`${from} -> ${to} is ${legal ? "legal" : "illegal"}`, () => {
        expect(canTransition(from, to)).toBe(legal);
        if (legal) expect(() => assertTransition("vm", from, to)).not.toThrow();
        else expect(() => assertTransition("vm", from, to)).toThrow(expect.objectContaining({ code: "INTERNAL" }));
      });
    }
  }
});

function vmRow(id: string, state: VmState): Vm {
  const now = new Date().toISOString();
  return {
    id,
    name: `vm-${id}`,
    imageId: "img",
    imageName: "img",
    state,
    vmm: "qemu",
    vcpus: 1,
    memoryMib: 256,
    workDiskGib: 1,
    nat: false,
    dir: `/tmp/${id}`,
    workSeedFallback: false,
    createdAt: now,
    updatedAt: now,
  };
}

describe("state compare-and-swap in SQLite", () => {
  function store() {
    const s = SqliteStore.open(join(mkdtempSync(join(tmpdir(), "banger-cas-")), "db"));
    s.insertImage({ id: "img", name: "img", bootArgs: "", guest: { os: "x", services: [] }, artifacts: [] });
    return s;
  }

  it("applies an edge only from the expected state, so one of two racers wins", () => {
    const s = store();
    s.insertVm(vmRow("a", "stopped"));
    const first = s.transitionVm("a", ["stopped"], "starting", { lastError: undefined });
    const second = s.transitionVm("a", ["stopped"], "starting");
    expect(first?.state).toBe("starting");
    expect(second).toBeUndefined();
    expect(s.getVm("vm-a")?.state).toBe("starting");
  });

  it("writes the patch with the state in one statement", () => {
    const s = store();
    s.insertVm({ ...vmRow("b", "running"), pid: 42, tap: "tap-pool-0" });
    const v = s.transitionVm("b", ["running"], "stopped", { pid: undefined, tap: undefined, lastError: "gone" })!;
    expect(v).toMatchObject({ state: "stopped", lastError: "gone" });
    expect(v.pid).toBeUndefined();
    expect(v.tap).toBeUndefined();
  });

  it("migrates a v1 database to the new states without losing leases", () => {
    const file = join(mkdtempSync(join(tmpdir(), "banger-mig-")), "db");
    const db = new Database(file);
    db.pragma("foreign_keys = ON");
    migrate(
      db,
      file,
      MIGRATIONS.filter((m) => m.version === 1),
    );
    db.prepare("INSERT INTO images (id, name, boot_args, guest_json, created_at) VALUES ('img', 'img', '', '{\"os\":\"x\",\"services\":[]}', 'now')").run();
    db.prepare(
      "INSERT INTO vms (id, name, image_id, image_name, state, vmm, vcpus, memory_mib, work_disk_gib, nat, dir, work_seed_fallback, created_at, updated_at) VALUES ('v', 'v', 'img', 'img', 'stopped', 'qemu', 1, 256, 1, 0, '/tmp/v', 0, 'now', 'now')",
    ).run();
    db.prepare("INSERT INTO ip_leases (ip, vm_id) VALUES ('172.30.0.2', 'v')").run();
    db.close();
    const s = SqliteStore.open(file);
    expect(leases(s)).toEqual([{ ip: "172.30.0.2", vmId: "v" }]);
    expect(s.transitionVm("v", ["stopped"], "starting")?.state).toBe("starting");
    s.deleteVm("v");
    expect(leases(s)).toEqual([]); // the cascade still works after the rebuild
  });
});
