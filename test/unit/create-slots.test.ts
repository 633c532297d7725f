import { describe, expect, it } from "vitest";
import { CreateSlots } from "../../src/app/create-slots.js";
import { BangerError } from "../../src/domain/errors.js";

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("CreateSlots", () => {
  it("grants up to its limit, then serves waiters in arrival order as slots are released", async () => {
    const s = new CreateSlots(2);
    const a = s.tryAcquire()!;
    const b = s.tryAcquire()!;
    expect(s.tryAcquire()).toBeUndefined();
    const order: string[] = [];
    const c = s.acquire(new AbortController().signal).then((r) => (order.push("c"), r));
    const d = s.acquire(new AbortController().signal).then((r) => (order.push("d"), r));
    await tick();
    expect(order).toEqual([]);
    expect([s.holders, s.waiting]).toEqual([2, 2]);
    a();
    const rc = await c;
    expect(order).toEqual(["c"]);
    b();
    const rd = await d;
    expect(order).toEqual(["c", "d"]);
    // A release called twice frees one slot, not two.
    rc();
    rc();
    expect(s.holders).toBe(1);
    rd();
    expect([s.holders, s.waiting]).toEqual([0, 0]);
  });

  it("a waiter whose signal aborts leaves the queue with CANCELLED and the others keep their place", async () => {
    const s = new CreateSlots(1);
    const held = s.tryAcquire()!;
    const gone = new AbortController();
    const first = s.acquire(gone.signal);
    const second = s.acquire(new AbortController().signal);
    gone.abort();
    await expect(first).rejects.toSatisfy((e) => e instanceof BangerError && e.code === "CANCELLED");
    expect(s.waiting).toBe(1);
    held();
    const r = await second;
    expect(s.holders).toBe(1);
    r();
    // A free slot goes at once; with every slot held, an already aborted signal is refused at once.
    const aborted = new AbortController();
    aborted.abort();
    expect(s.tryAcquire()).toBeTypeOf("function");
    await expect(s.acquire(aborted.signal)).rejects.toBeInstanceOf(BangerError);
  });

  it("never lets a newcomer take a slot ahead of the queue", async () => {
    const s = new CreateSlots(1);
    const held = s.tryAcquire()!;
    const waiter = s.acquire(new AbortController().signal);
    held();
    // The freed slot went to the waiter, not to whoever asks next.
    expect(s.tryAcquire()).toBeUndefined();
    (await waiter)();
    expect(() => new CreateSlots(0)).toThrow(RangeError);
  });
});
