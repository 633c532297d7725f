import { describe, expect, it } from "vitest";
import { EventBus } from "../../src/app/event-bus.js";
import { readSnapshot, snapshotDirOf } from "../../src/app/snapshot-record.js";
import { SnapshotKeeper } from "../../src/app/snapshot-keeper.js";
import { snapWorld } from "../helpers/snap-world.js";

type W = ReturnType<typeof snapWorld>;

function keeper(w: W, auto: boolean) {
  w.d.config.autoSnapshot = auto;
  return new SnapshotKeeper(w.d);
}

const snapshotOf = (w: W) => readSnapshot(w.d.files, snapshotDirOf(w.d.config.imagesDir, w.store.getImage("deb-1")!.id));

describe("snapshot keeper", () => {
  it("does nothing unless the config or the image asks for snapshots", async () => {
    const w = snapWorld();
    const k = keeper(w, false);
    k.start();
    await k.idle();
    expect(await snapshotOf(w)).toBeUndefined();
    expect(w.execs).toEqual([]);
    // An image registered with --snapshot asks on its own; a broken one never does.
    const img = w.store.getImage("deb-1")!;
    expect(k.wants({ ...img, guest: { ...img.guest, snapshot: true } })).toBe(true);
    expect(k.wants({ ...img, status: "broken", guest: { ...img.guest, snapshot: true } })).toBe(false);
  });

  it("with snapshot = true, takes the missing snapshot once, and not again while it fits", async () => {
    const w = snapWorld();
    const k = keeper(w, true);
    expect(await k.need(w.store.getImage("deb-1")!)).toBe("it has none");
    k.start();
    await k.idle();
    const snap = await snapshotOf(w);
    expect(snap?.record.imageId).toBe(w.store.getImage("deb-1")!.id);
    expect(await k.need(w.store.getImage("deb-1")!)).toBeUndefined();
    const logins = w.execs.length;
    k.kick();
    await k.idle();
    expect(w.execs.length).toBe(logins);
    expect((await snapshotOf(w))?.record.id).toBe(snap!.record.id);
    // The golden VM is gone with the pass.
    expect(w.store.listVms()).toEqual([]);
  });

  it("waits while a create is in flight, then takes it", async () => {
    const w = snapWorld();
    const k = keeper(w, true);
    const ticket = w.d.ops.begin("someone", "create");
    k.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(w.store.listVms()).toEqual([]);
    expect(w.execs).toEqual([]);
    ticket.release();
    await k.idle();
    expect(await snapshotOf(w)).toBeDefined();
  });

  it("an image list change (the bus's images event) starts a pass; a failed snapshot is not retried in a loop", async () => {
    const w = snapWorld({ fail: true });
    const k = keeper(w, true);
    const bus = new EventBus();
    k.start(bus);
    await k.idle();
    expect(await snapshotOf(w)).toBeUndefined();
    const attempts = w.execs.length;
    expect(attempts).toBeGreaterThan(0);
    bus.publish({ type: "images" });
    await k.idle();
    // Same image, same checksums: the keeper remembers the failure instead of booting again.
    expect(w.execs.length).toBe(attempts);
    expect(w.store.listVms()).toEqual([]);
    k.close();
  });
});
