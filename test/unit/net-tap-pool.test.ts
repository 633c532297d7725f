import { describe, expect, it } from "vitest";
import { isBangerTap, isPoolName, onDemandName, TapPool, type TapOps } from "../../src/adapters/net/tap-pool.js";

/** An in-memory host whose operations yield to the event loop, like real `ip` calls do. */
class FakeHost implements TapOps {
  devices = new Set<string>();
  calls: string[] = [];
  failCreate = false;
  private tick = () => new Promise<void>((r) => setImmediate(r));
  async create(name: string) {
    this.calls.push(`create ${name}`);
    await this.tick();
    if (this.failCreate) throw new Error("no /dev/net/tun");
    this.devices.add(name);
  }
  async delete(name: string) {
    this.calls.push(`delete ${name}`);
    await this.tick();
    this.devices.delete(name);
  }
  async reset(name: string) {
    this.calls.push(`reset ${name}`);
    await this.tick();
    return this.devices.has(name);
  }
}

const quiet = { debug() {}, warn() {} };

async function filled(size: number, host = new FakeHost()) {
  const pool = new TapPool(size, host, quiet);
  pool.discovered([...host.devices]);
  await pool.settled();
  return { pool, host };
}

describe("tap names", () => {
  it("recognises banger devices only", () => {
    expect(isPoolName("tap-pool-3")).toBe(true);
    expect(isPoolName("tap-pool-x")).toBe(false);
    expect(isBangerTap("bt-abc")).toBe(true);
    expect(isBangerTap("eth0")).toBe(false);
  });

  it("makes on-demand names within IFNAMSIZ and avoids taken ones", () => {
    const n = onDemandName("01HXYZ-ABCDEFGHIJKLMN", () => false);
    expect(n).toBe("bt-01hxyzabcd");
    expect(n.length).toBeLessThanOrEqual(15);
    const taken = new Set([n]);
    const second = onDemandName("01HXYZ-ABCDEFGHIJKLMN", (x) => taken.has(x));
    expect(second).not.toBe(n);
    expect(second.length).toBeLessThanOrEqual(15);
    expect(onDemandName("!!!", () => false)).toBe("bt-vm");
  });
});

describe("TapPool", () => {
  it("fills to its size when nothing needs adopting", async () => {
    const { pool, host } = await filled(3);
    expect(pool.idleNames()).toEqual(["tap-pool-0", "tap-pool-1", "tap-pool-2"]);
    expect([...host.devices].sort()).toEqual(["tap-pool-0", "tap-pool-1", "tap-pool-2"]);
  });

  it("hands out distinct devices to concurrent acquires, then creates on demand", async () => {
    const { pool, host } = await filled(4);
    const got = await Promise.all(Array.from({ length: 12 }, (_, i) => pool.acquire(`vm${i}-xxxxxxxx`)));
    expect(new Set(got).size).toBe(12);
    expect(got.filter(isPoolName).length).toBeGreaterThanOrEqual(4);
    for (const t of got) expect(host.devices.has(t)).toBe(true);
    await pool.settled();
    // refill restored idle capacity with names no VM holds
    expect(pool.idleNames().length).toBe(4);
    for (const t of pool.idleNames()) expect(got).not.toContain(t);
  });

  it("takes the first acquire from the idle list without touching the host", async () => {
    const { pool, host } = await filled(2);
    host.calls = [];
    const p = pool.acquire("vm1");
    // the device is chosen synchronously; only the background refill calls the host
    expect(host.calls.filter((c) => c.startsWith("create bt-"))).toEqual([]);
    expect(await p).toBe("tap-pool-0");
  });

  it("returns pool devices on release and deletes on-demand ones", async () => {
    const host = new FakeHost();
    const { pool } = await filled(1, host);
    const a = await pool.acquire("vm-a");
    const b = await pool.acquire("vm-b");
    expect(a).toBe("tap-pool-0");
    expect(b.startsWith("bt-")).toBe(true);
    await pool.settled();
    await pool.release(b, "vm-b");
    expect(host.devices.has(b)).toBe(false);
    // pool is full again (refill made tap-pool-1), so a returned pool device is deleted
    await pool.release(a, "vm-a");
    expect(host.devices.has(a)).toBe(false);
    expect(pool.idleNames()).toEqual(["tap-pool-1"]);
  });

  it("keeps a returned pool device when there is room, and double release is harmless", async () => {
    const host = new FakeHost();
    host.devices.add("tap-pool-0");
    const pool = new TapPool(1, host, quiet);
    pool.discovered([...host.devices]);
    await pool.adopt([{ tap: "tap-pool-0", vmId: "vm0" }], [...host.devices]);
    await pool.settled(); // refill creates tap-pool-1 as the idle device
    await pool.release("tap-pool-1", "x"); // idle already: no-op
    expect(pool.idleNames()).toEqual(["tap-pool-1"]);
    const t = await pool.acquire("x");
    expect(t).toBe("tap-pool-1");
    await pool.close(); // no refill now, so the next release has room
    await pool.release("tap-pool-0", "vm0");
    // closed pool does not keep devices
    expect(host.devices.has("tap-pool-0")).toBe(false);
  });

  it("resets and keeps a returned device when idle is below size", async () => {
    const host = new FakeHost();
    const pool = new TapPool(1, host, quiet);
    host.devices.add("tap-pool-0");
    await pool.adopt([{ tap: "tap-pool-0", vmId: "vm0" }], [...host.devices]);
    // hold refill back by making it fail, so the pool has room
    host.failCreate = true;
    await pool.settled();
    expect(pool.idleNames()).toEqual([]);
    await pool.release("tap-pool-0", "vm0");
    expect(host.calls).toContain("reset tap-pool-0");
    expect(pool.idleNames()).toEqual(["tap-pool-0"]);
    expect(host.devices.has("tap-pool-0")).toBe(true);
  });

  it("adopts: in-use devices stay busy, others become idle, excess is deleted", async () => {
    const host = new FakeHost();
    for (const n of ["tap-pool-0", "tap-pool-1", "tap-pool-2", "tap-pool-3", "tap-pool-5"]) host.devices.add(n);
    const pool = new TapPool(2, host, quiet);
    pool.discovered([...host.devices]);
    await pool.settled();
    // nothing created or handed out before adoption
    expect(host.calls).toEqual([]);
    expect(pool.idleNames()).toEqual([]);
    await pool.adopt([{ tap: "tap-pool-1", vmId: "vm1" }], [...host.devices]);
    await pool.settled();
    expect(pool.idleNames()).toEqual(["tap-pool-0", "tap-pool-2"]);
    expect(pool.isBusy("tap-pool-1")).toBe(true);
    expect([...host.devices].sort()).toEqual(["tap-pool-0", "tap-pool-1", "tap-pool-2"]);
    // kept devices are reset (re-attached, up) before being handed out; the rest deleted; nothing created
    expect(host.calls.sort()).toEqual(["delete tap-pool-3", "delete tap-pool-5", "reset tap-pool-0", "reset tap-pool-2"]);
    const got = await Promise.all([pool.acquire("a"), pool.acquire("b")]);
    expect(got).not.toContain("tap-pool-1");
  });

  it("lets only the owner release a device: a stale release cannot flap another VM's TAP", async () => {
    const host = new FakeHost();
    host.devices.add("tap-pool-0");
    const pool = new TapPool(1, host, quiet);
    await pool.adopt([], [...host.devices]);
    host.failCreate = true; // no refill: the one device goes round
    const t = await pool.acquire("vm-a");
    await pool.settled();
    expect(pool.ownerOf(t)).toBe("vm-a");
    await pool.release(t, "vm-a");
    await pool.release(t, "vm-a"); // a second release by the same VM is a no-op
    const again = await pool.acquire("vm-b");
    expect(again).toBe(t);
    const calls = host.calls.length;
    await expect(pool.release(t, "vm-a")).rejects.toMatchObject({ code: "INTERNAL" });
    expect(host.calls.length).toBe(calls); // the device was not touched
    expect(pool.ownerOf(t)).toBe("vm-b");
    expect(pool.idleNames()).not.toContain(t);
  });

  it("falls back to on-demand devices with poolSize 0", async () => {
    const { pool, host } = await filled(0);
    const t = await pool.acquire("0123456789abcdef");
    expect(t).toBe("bt-0123456789");
    await pool.settled();
    expect(host.calls.filter((c) => c.startsWith("create tap-pool"))).toEqual([]);
    await pool.release(t, "0123456789abcdef");
    expect(host.devices.size).toBe(0);
  });

  it("survives a failing refill and reports the on-demand error to the caller", async () => {
    const host = new FakeHost();
    host.failCreate = true;
    const pool = new TapPool(2, host, quiet);
    pool.discovered([]);
    await pool.settled();
    await expect(pool.acquire("vm")).rejects.toThrow(/dev\/net\/tun/);
    host.failCreate = false;
    const t = await pool.acquire("vm");
    expect(t.startsWith("bt-")).toBe(true);
    await pool.settled();
    expect(pool.idleNames().length).toBe(2);
  });
});
