import { createServer, connect, type AddressInfo } from "node:net";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { TcpProxy } from "../../src/adapters/net/tcp-proxy.js";
import { createVm } from "../../src/app/create.js";
import { removeVm, startVm, stopVm } from "../../src/app/lifecycle.js";
import { addPeerings, addPort, listPorts, removePort, restoreForwards } from "../../src/app/vm-net.js";
import { world } from "../helpers/app-world.js";

const log = pino({ level: "silent" });

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** What a TCP client on the host gets: the data read until close, or the connect error. */
function talk(port: number, send = "ping"): Promise<{ ok: boolean; data: string; error?: string }> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let data = "";
    s.setTimeout(5_000, () => s.destroy(new Error("timeout")));
    s.on("connect", () => s.end(send));
    s.on("data", (b) => (data += b.toString()));
    s.on("error", (e) => resolve({ ok: false, data, error: e.message }));
    s.on("close", () => resolve({ ok: true, data }));
  });
}

describe("TcpProxy", () => {
  it("relays both ways to the target, refuses a taken port, and closes cleanly", async () => {
    const echo = createServer((c) => c.on("data", (b) => c.end(`echo:${b.toString()}`)));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
    const target = (echo.address() as AddressInfo).port;
    const proxy = new TcpProxy(log);
    const hostPort = await freePort();
    const f = { vmId: "v1", hostAddress: "127.0.0.1", hostPort, guestPort: target };
    try {
      await proxy.open(f, "127.0.0.1");
      await proxy.open(f, "127.0.0.1"); // idempotent
      expect(await talk(hostPort)).toEqual({ ok: true, data: "echo:ping" });
      await expect(proxy.open({ ...f, vmId: "v2" }, "127.0.0.1")).rejects.toMatchObject({ code: "PORT_IN_USE" });
      const other = new TcpProxy(log);
      await expect(other.open(f, "127.0.0.1")).rejects.toMatchObject({ code: "PORT_IN_USE", message: expect.stringMatching(/listens there/) });
      await expect(other.open({ ...f, hostAddress: "192.0.2.77" }, "127.0.0.1")).rejects.toMatchObject({ code: "BAD_REQUEST" });
      expect(proxy.active()).toEqual([f]);
      await proxy.close("127.0.0.1", hostPort);
      expect(proxy.active()).toEqual([]);
      expect((await talk(hostPort)).error).toMatch(/ECONNREFUSED/);
    } finally {
      await proxy.closeAll();
      echo.close();
    }
  });

  it("closes the client's connection when the guest does not answer", async () => {
    const proxy = new TcpProxy(log);
    const hostPort = await freePort();
    const dead = await freePort();
    try {
      await proxy.open({ vmId: "v1", hostAddress: "127.0.0.1", hostPort, guestPort: dead }, "127.0.0.1");
      const r = await talk(hostPort);
      expect(r.data).toBe("");
    } finally {
      await proxy.closeAll();
    }
  });
});

describe("forwards and peers through the VM lifecycle", () => {
  it("create -p listens, a conflict fails the second create with nothing left, rm closes it", async () => {
    const { d, store } = world();
    const port = await freePort();
    const a = await createVm(d, { image: "deb-1", name: "a", forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 4096 }] });
    expect(store.events(a.id).map((e) => e.stage)).toContain("forwards");
    expect(listPorts(d, "a")).toEqual([{ vm: "a", hostAddress: "127.0.0.1", hostPort: port, guestPort: 4096, listening: true }]);
    const err = await createVm(d, { image: "deb-1", name: "b", forwards: [{ hostAddress: "0.0.0.0", hostPort: port, guestPort: 80 }] }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "PORT_IN_USE", message: expect.stringMatching(new RegExp(`${port}`)) });
    expect(store.getVm("b")).toBeUndefined();
    expect(store.listForwards().map((f) => f.vmId)).toEqual([a.id]);
    await removeVm(d, "a", true);
    expect(store.listForwards()).toEqual([]);
    expect(d.forwarder.active()).toEqual([]);
  });

  it("a create that fails after the forwards stage closes and forgets them", async () => {
    const { d, store } = world("spawn-vmm");
    const port = await freePort();
    await expect(createVm(d, { image: "deb-1", name: "a", forwards: [{ hostAddress: "127.0.0.1", hostPort: port, guestPort: 80 }] })).rejects.toMatchObject({
      stage: "spawn-vmm",
    });
    expect(store.listForwards()).toEqual([]);
    expect(d.forwarder.active()).toEqual([]);
    expect((await talk(port)).error).toMatch(/ECONNREFUSED/);
  });

  it("port add/rm are checked and stored; a new daemon restores them", async () => {
    const { d, store } = world();
    await createVm(d, { image: "deb-1", name: "a" });
    const port = await freePort();
    await addPort(d, "a", `${port}:22`);
    await expect(addPort(d, "a", `${port}:23`)).rejects.toMatchObject({ code: "PORT_IN_USE" });
    await expect(addPort(d, "nope", "1:2")).rejects.toMatchObject({ code: "VM_NOT_FOUND" });
    expect(store.listForwards()).toHaveLength(1);
    // a daemon restart: a fresh relay, the same store
    await d.forwarder.closeAll();
    const restarted = { ...d, forwarder: new TcpProxy(log) };
    expect(await restoreForwards(restarted)).toEqual([]);
    expect(listPorts(restarted, "a")[0]).toMatchObject({ hostPort: port, listening: true });
    await removePort(restarted, "a", port);
    await expect(removePort(restarted, "a", port)).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(restarted.forwarder.active()).toEqual([]);
  });

  it("--peers pairs the two TAPs both ways, follows stop/start and goes with rm", async () => {
    const { d, held, store } = world();
    const a = await createVm(d, { image: "deb-1", name: "a" });
    const c = await createVm(d, { image: "deb-1", name: "c" });
    expect(held.peers).toEqual([]);
    await expect(createVm(d, { image: "deb-1", name: "b", peers: ["ghost"] })).rejects.toMatchObject({ code: "VM_NOT_FOUND" });
    await expect(createVm(d, { image: "deb-1", name: "b", peers: ["b"] })).rejects.toMatchObject({ code: "BAD_REQUEST" });
    expect(store.getVm("b")).toBeUndefined();
    const b = await createVm(d, { image: "deb-1", name: "b", peers: ["a"] });
    const tap = (n: string) => store.getVm(n)!.tap!;
    expect(held.peers).toHaveLength(1);
    expect(new Set(held.peers[0])).toEqual(new Set([tap("a"), tap("b")]));
    expect(held.peers.flat()).not.toContain(tap("c"));
    await stopVm(d, "a");
    expect(held.peers).toEqual([]);
    await startVm(d, "a");
    expect(new Set(held.peers[0])).toEqual(new Set([tap("a"), tap("b")]));
    await removeVm(d, "b", true);
    expect(held.peers).toEqual([]);
    expect(store.peerPairs()).toEqual([]);
    expect([a.id, c.id, b.id].length).toBe(3);
  });

  it("addPeerings pairs existing VMs once (a peer that arrived later), applies it at once, and refuses what does not exist", async () => {
    const { d, held, store } = world();
    await createVm(d, { image: "deb-1", name: "a" });
    await createVm(d, { image: "deb-1", name: "b" });
    await createVm(d, { image: "deb-1", name: "c", peers: ["a"] });
    const tap = (n: string) => store.getVm(n)!.tap!;
    expect(await addPeerings(d, "a", ["b", "c"])).toEqual(["b"]);
    expect(held.peers.map((p) => [...p].sort().join(" "))).toEqual(
      expect.arrayContaining([[tap("a"), tap("b")].sort().join(" "), [tap("a"), tap("c")].sort().join(" ")]),
    );
    expect(held.peers).toHaveLength(2);
    expect(await addPeerings(d, "b", ["a"])).toEqual([]);
    expect(store.peerPairs()).toHaveLength(2);
    await expect(addPeerings(d, "a", ["ghost"])).rejects.toMatchObject({ code: "VM_NOT_FOUND" });
    await expect(addPeerings(d, "ghost", ["a"])).rejects.toMatchObject({ code: "VM_NOT_FOUND" });
    expect(store.peerPairs()).toHaveLength(2);
  });
});
