import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/adapters/sqlite/store.js";
import { EventBus, type Sequenced } from "../../src/app/event-bus.js";
import { observedStore } from "../../src/app/observed-store.js";
import type { Vm } from "../../src/domain/types.js";

const dir = mkdtempSync(join(tmpdir(), "banger-bus-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the store seen through the event bus", () => {
  it("publishes each committed VM change, removal, stage and image change, in order, to every listener", () => {
    const sqlite = SqliteStore.open(join(dir, "banger.db"));
    const bus = new EventBus();
    const store = observedStore(sqlite, bus);
    const a: Sequenced[] = [];
    const b: Sequenced[] = [];
    const offA = bus.subscribe((e) => a.push(e));
    bus.subscribe((e) => b.push(e));
    // A listener that throws is dropped; the store write still succeeds.
    bus.subscribe(() => {
      throw new Error("broken tab");
    });

    const img = store.insertImage({ id: "img-1", name: "deb-1", bootArgs: "", guest: { os: "debian", services: [] }, artifacts: [] });
    store.setAlias("deb", img.id);
    const vm: Vm = {
      id: "vm-1",
      name: "one",
      imageId: img.id,
      imageName: img.name,
      state: "creating",
      vmm: "qemu",
      vcpus: 1,
      memoryMib: 256,
      workDiskGib: 1,
      nat: false,
      dir: "/x",
      workSeedFallback: false,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    };
    store.insertVm(vm);
    store.addEvent({
      vmId: vm.id,
      vmName: vm.name,
      opId: store.nextOpId(),
      op: "create",
      stage: "lease-ip",
      startedAt: vm.createdAt,
      durationMs: 1,
      outcome: "ok",
    });
    expect(store.transitionVm(vm.id, ["stopped"], "running")).toBeUndefined(); // a lost swap publishes nothing
    store.transitionVm(vm.id, ["creating"], "running", { ip: "172.30.0.2" });
    store.deleteVm(vm.id);
    expect(bus.size).toBe(2);

    expect(a.map((e) => e.type)).toEqual(["images", "images", "vm", "stage", "vm", "vm-removed"]);
    expect(a.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(a[4]).toMatchObject({ type: "vm", vm: { name: "one", state: "running", ip: "172.30.0.2" } });
    expect(a[5]).toMatchObject({ type: "vm-removed", id: "vm-1", name: "one" });
    expect(b).toEqual(a);
    offA();
    store.setImageStatus(img.id, "broken", "gone");
    expect(a).toHaveLength(6);
    expect(b.at(-1)?.type).toBe("images");
    store.close();
  });
});
