import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LinuxNetwork } from "../../src/adapters/net/linux-network.js";
import { pingFrom } from "../helpers/icmp.js";
import {
  createNetns,
  createUpstream,
  createVethGuest,
  destroyAllNetns,
  httpGetFrom,
  netnsSkipReason,
  startHttpServer,
  type HttpServer,
  type Netns,
  type Upstream,
} from "../helpers/netns.js";

const skip = netnsSkipReason();
if (skip) console.warn(`net-linux-network: skipped: ${skip}`);

const BRIDGE = "banger0";
const SUBNET = "172.30.0.0/24";
const GATEWAY = "172.30.0.1";
const WEB = 7780;
const OTHER = 7790;
const POOL = 3;
const warnings: unknown[] = [];
const log = { debug() {}, info() {}, warn: (o: object) => void warnings.push(o) };

interface LinkRow {
  ifname: string;
  ifindex: number;
  flags: string[];
  master?: string;
}

describe.skipIf(skip !== undefined)(`LinuxNetwork in a network namespace${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let vmNs: Netns;
  let upstream: Upstream;
  let net: LinuxNetwork;

  const make = () => new LinuxNetwork({ runner: vmNs.runner, bridge: BRIDGE, subnet: SUBNET, poolSize: POOL, natAllow: [], log });
  const links = async (): Promise<LinkRow[]> => JSON.parse((await vmNs.exec("ip", ["-j", "link", "show"])).stdout);
  const byName = async () => new Map((await links()).map((l) => [l.ifname, l]));
  const tableText = async () => (await vmNs.exec("nft", ["list", "table", "inet", "banger"])).stdout;

  beforeAll(async () => {
    vmNs = await createNetns("vm");
    upstream = await createUpstream(vmNs);
    net = make();
  });

  afterAll(async () => {
    await net?.close();
    await destroyAllNetns();
  });

  it("ensureHost builds bridge and nft table, and a second run changes nothing", async () => {
    await net.ensureHost();
    const first = await tableText();
    await net.enableNat("172.30.0.9");
    await net.ensureHost();
    const st = await net.status();
    expect(st.bridge).toEqual({ name: BRIDGE, exists: true, up: true, address: `${GATEWAY}/24` });
    expect(st.natTable).toBe(true);
    expect(st.uplink).toBe(upstream.vmIfname);
    // the re-run kept the NAT set (running VMs keep NAT) and wrote the same rules once
    expect(st.natAddresses).toEqual(["172.30.0.9"]);
    const second = await tableText();
    expect(second.replace(/\n\s*elements = \{[^}]*\}/, "")).toBe(first);
    expect(second.match(/masquerade/g)?.length).toBe(1);
    const tables = (await vmNs.exec("nft", ["list", "tables"])).stdout.trim().split("\n");
    expect(tables.sort()).toEqual(["table bridge banger", "table inet banger"]);
    const addrs = JSON.parse((await vmNs.exec("ip", ["-j", "-4", "addr", "show", "dev", BRIDGE])).stdout);
    expect(addrs[0].addr_info.map((a: { local: string }) => a.local)).toEqual([GATEWAY]);
    await net.disableNat("172.30.0.9");
    console.log(`generated ruleset:\n${await tableText()}`);
  });

  it("fills the pool with TAPs attached to the bridge and up", async () => {
    await net.adopt([]);
    await net.settled();
    const st = await net.status();
    expect(st.poolIdle).toEqual(["tap-pool-0", "tap-pool-1", "tap-pool-2"]);
    const m = await byName();
    for (const t of st.poolIdle) {
      expect(m.get(t)?.master).toBe(BRIDGE);
      expect(m.get(t)?.flags).toContain("UP");
    }
    // every pool device is an isolated bridge port before any VM gets it
    expect(st.isolation.unisolatedTaps).toEqual([]);
    const detail = JSON.parse((await vmNs.exec("ip", ["-d", "-j", "link", "show", "dev", st.poolIdle[0]!])).stdout);
    expect(detail[0].linkinfo.info_slave_data.isolated).toBe(true);
  });

  it("gives 12 concurrent acquires distinct devices and takes them back", async () => {
    const got = await Promise.all(Array.from({ length: 12 }, (_, i) => net.acquireTap(`vm${i}abcdefghij`)));
    expect(new Set(got).size).toBe(12);
    expect(got.filter((t) => t.startsWith("tap-pool-")).length).toBeGreaterThanOrEqual(POOL);
    expect(got.filter((t) => t.startsWith("bt-")).length).toBeGreaterThan(0);
    await net.settled();
    const m = await byName();
    for (const t of got) {
      expect(t.length).toBeLessThanOrEqual(15);
      expect(m.get(t)?.master).toBe(BRIDGE);
      expect(m.get(t)?.flags).toContain("UP");
    }
    const idleBefore = (await net.status()).poolIdle;
    for (const t of idleBefore) expect(got).not.toContain(t);

    await Promise.all(got.map((t, i) => net.releaseTap(t, `vm${i}abcdefghij`)));
    await net.releaseTap(got[0]!, "vm0abcdefghij"); // idempotent
    await net.settled();
    const st = await net.status();
    expect(st.poolIdle.length).toBe(POOL);
    // on-demand devices are gone; only the idle pool is left on the host
    expect(st.taps).toEqual([...st.poolIdle].sort());
    await expect(net.releaseTap("uplink0", "vm0abcdefghij")).rejects.toMatchObject({ code: "NETWORK_FAILED" });
  });

  it("a second instance adopts existing pool devices instead of recreating them", async () => {
    const held = await net.acquireTap("held-vm");
    await net.settled();
    await net.close();
    // leftovers a crashed daemon might leave: an extra pool device and an orphan per-VM TAP
    for (const extra of ["tap-pool-9", "bt-orphan"]) {
      await vmNs.exec("ip", ["tuntap", "add", "dev", extra, "mode", "tap"]);
    }
    // and an idle device someone detached and downed
    const detached = (await net.status()).poolIdle[0]!;
    await vmNs.exec("ip", ["link", "set", "dev", detached, "nomaster", "down"]);
    const before = await byName();
    net = make();
    await net.ensureHost();
    await net.adopt([{ tap: held, vmId: "held-vm" }]);
    await net.settled();
    const st = await net.status();
    expect(st.poolIdle).not.toContain(held);
    expect(st.poolIdle.length).toBe(POOL);
    expect(st.taps).toContain(held);
    expect(st.taps).not.toContain("bt-orphan");
    expect(st.taps.filter((t) => t.startsWith("tap-pool-")).length).toBe(POOL + 1);
    const after = await byName();
    // same ifindex: adopted, not deleted and created again
    for (const t of st.poolIdle.filter((n) => before.has(n))) expect(after.get(t)?.ifindex).toBe(before.get(t)?.ifindex);
    expect(after.get(held)?.ifindex).toBe(before.get(held)?.ifindex);
    expect(st.poolIdle).toContain(detached);
    expect(after.get(detached)?.master).toBe(BRIDGE);
    expect(after.get(detached)?.flags).toContain("UP");
    const next = await net.acquireTap("another");
    expect(next).not.toBe(held);
    await expect(net.releaseTap(held, "another")).rejects.toMatchObject({ code: "INTERNAL" }); // not its device
    await net.releaseTap(next, "another");
    await net.releaseTap(held, "held-vm");
    await net.settled();
  });

  it("enableNat/disableNat add and remove one set element, idempotently", async () => {
    await net.enableNat("172.30.0.5");
    await net.enableNat("172.30.0.5");
    await net.enableNat("172.30.0.6");
    let st = await net.status();
    expect(st.natAddresses).toEqual(["172.30.0.5", "172.30.0.6"]);
    expect(st.ipForward).toBe(true);
    await net.disableNat("172.30.0.6");
    await net.disableNat("172.30.0.6");
    st = await net.status();
    expect(st.natAddresses).toEqual(["172.30.0.5"]);
    await expect(net.enableNat("10.9.9.9")).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await net.disableNat("172.30.0.5");
  });

  describe("traffic from stand-in guests on the bridge", () => {
    // veth stand-ins named like banger's on-demand TAPs, so the bridge rules treat them as guests
    let a: Netns;
    let b: Netns;
    let server: HttpServer;
    let metadata: HttpServer;
    let privateUp: HttpServer;
    let onGateway: HttpServer;
    let onUplinkAddr: HttpServer;
    let onB: HttpServer;
    const A = "172.30.0.5";
    const B = "172.30.0.6";

    beforeAll(async () => {
      a = await createVethGuest(vmNs, { bridge: BRIDGE, ip: A, prefix: 24, gateway: GATEWAY, hostIfname: "bt-ga" });
      b = await createVethGuest(vmNs, { bridge: BRIDGE, ip: B, prefix: 24, gateway: GATEWAY, hostIfname: "bt-gb" });
      // a fresh device is isolated by whoever attaches it; these were attached by the test, so the peer sync sets it
      await net.setPeers([]);
      server = await upstream.startHttpServer(8080);
      // With a route back, un-NATed guest traffic could reach the server; only the forward drop stops it.
      await upstream.routeBack(SUBNET);
      // On the upstream side: a cloud metadata address and a private range the host can route to.
      await upstream.ns.exec("ip", ["addr", "add", "169.254.169.254/32", "dev", "wan0"]);
      await upstream.ns.exec("ip", ["addr", "add", "10.9.0.1/24", "dev", "wan0"]);
      metadata = await startHttpServer(upstream.ns, 80, "169.254.169.254");
      privateUp = await startHttpServer(upstream.ns, 8081, "10.9.0.1");
      // On the host: one listener on the bridge address, one on the uplink address (the host's other address).
      onGateway = await startHttpServer(vmNs, WEB, GATEWAY);
      onUplinkAddr = await startHttpServer(vmNs, OTHER, upstream.vmAddress);
      onB = await startHttpServer(b, 9000, B);
    });

    afterAll(async () => {
      for (const s of [server, metadata, privateUp, onGateway, onUplinkAddr, onB]) await s?.stop();
      await a?.destroy();
      await b?.destroy();
    });

    /** Positive control: with banger's chain emptied the same probe gets through, so the drop is banger's doing. */
    const withoutChain = async <T>(family: string, chain: string, fn: () => Promise<T>): Promise<T> => {
      await vmNs.exec("nft", ["flush", "chain", family, "banger", chain]);
      try {
        return await fn();
      } finally {
        await net.ensureHost();
      }
    };

    it("with NAT the upstream sees the masqueraded address", async () => {
      await net.enableNat(A);
      const r = await httpGetFrom(a, server.url);
      expect(r).toMatchObject({ ok: true, body: upstream.vmAddress });
      expect(await server.peers()).toEqual([upstream.vmAddress]);
    });

    it("even with NAT, metadata and private ranges upstream stay unreachable", async () => {
      expect((await httpGetFrom(a, "http://169.254.169.254:80/", 1_500)).ok).toBe(false);
      expect((await httpGetFrom(a, privateUp.url, 1_500)).ok).toBe(false);
      expect(await metadata.peers()).toEqual([]);
      expect(await privateUp.peers()).toEqual([]);
      // both answer from elsewhere: the drop is banger's, not a dead listener
      expect((await httpGetFrom(vmNs, privateUp.url)).ok).toBe(true);
    });

    it("nat.allow opens a chosen private range and nothing else", async () => {
      const allowed = new LinuxNetwork({ runner: vmNs.runner, bridge: BRIDGE, subnet: SUBNET, poolSize: POOL, natAllow: ["10.9.0.0/24"], log });
      await allowed.ensureHost();
      try {
        expect(await privateUp.peers()).toEqual([upstream.vmAddress]);
        expect((await httpGetFrom(a, privateUp.url)).ok).toBe(true);
        expect((await httpGetFrom(a, "http://169.254.169.254:80/", 1_500)).ok).toBe(false);
      } finally {
        await allowed.close();
        await net.ensureHost(); // back to the default policy
      }
      expect((await httpGetFrom(a, privateUp.url, 1_500)).ok).toBe(false);
    });

    it("without NAT the guest cannot reach the upstream", async () => {
      await net.disableNat(A);
      const r = await httpGetFrom(a, server.url, 1_500);
      expect(r.ok).toBe(false);
      expect(await server.peers()).toEqual([upstream.vmAddress]);
      // and enabling it again restores access
      await net.enableNat(A);
      expect((await httpGetFrom(a, server.url)).ok).toBe(true);
    });

    it("nothing new comes in from the uplink, even with a route and NAT on", async () => {
      expect((await httpGetFrom(upstream.ns, `http://${B}:9000/`, 1_500)).ok).toBe(false);
      await net.enableNat(B);
      expect((await httpGetFrom(upstream.ns, `http://${B}:9000/`, 1_500)).ok).toBe(false);
      expect(await onB.peers()).toEqual([]);
      await net.disableNat(B);
      await net.disableNat(A);
    });

    it("a guest reaches no host port, on the bridge address or any other host address, TCP or ICMP", async () => {
      expect((await httpGetFrom(a, onGateway.url, 1_500)).ok).toBe(false);
      expect((await httpGetFrom(a, onUplinkAddr.url, 1_500)).ok).toBe(false);
      expect(await onGateway.peers()).toEqual([]);
      expect(await onUplinkAddr.peers()).toEqual([]);
      expect(await pingFrom(a, GATEWAY)).toBe(false);
      expect(await withoutChain("inet", "input", async () => (await httpGetFrom(a, onUplinkAddr.url)).ok && (await pingFrom(a, GATEWAY)))).toBe(true);
      // the same listeners answer the host itself, and the host still reaches the guest (replies pass)
      expect((await httpGetFrom(vmNs, onGateway.url)).ok).toBe(true);
      expect((await httpGetFrom(vmNs, `http://${B}:9000/`)).ok).toBe(true);
      expect(await pingFrom(vmNs, A)).toBe(true);
    });

    it("guests do not reach each other, TCP or ICMP, until they are peers, and not after", async () => {
      expect((await httpGetFrom(a, `http://${B}:9000/`, 1_500)).ok).toBe(false);
      expect(await pingFrom(a, B)).toBe(false);
      expect(await pingFrom(b, A)).toBe(false);
      // port isolation alone already separates them: the bridge table is a second lock, not the only one
      expect(await withoutChain("bridge", "forward", async () => pingFrom(a, B))).toBe(false);
      await net.setPeers([["bt-ga", "bt-gb"]]);
      let st = await net.status();
      expect(st.isolation.peers).toEqual(["bt-ga . bt-gb", "bt-gb . bt-ga"]);
      expect(st.isolation.unisolatedTaps.sort()).toEqual(["bt-ga", "bt-gb"]);
      expect(await httpGetFrom(a, `http://${B}:9000/`)).toMatchObject({ ok: true, body: A });
      expect(await pingFrom(a, B)).toBe(true);
      expect(await pingFrom(b, A)).toBe(true);
      await net.setPeers([]);
      st = await net.status();
      expect(st.isolation.peers).toEqual([]);
      expect(st.isolation.unisolatedTaps).toEqual([]);
      expect(await pingFrom(a, B)).toBe(false);
      expect((await httpGetFrom(a, `http://${B}:9000/`, 1_500)).ok).toBe(false);
    });

    it("routing through the gateway to another guest is refused too", async () => {
      // A guest that sends B's traffic to the gateway's MAC: the host would route it back onto the bridge.
      await vmNs.exec("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
      // Both ways: B's answer would otherwise go straight to A on the bridge, which the bridge refuses anyway.
      await a.exec("ip", ["route", "replace", `${B}/32`, "via", GATEWAY]);
      await b.exec("ip", ["route", "replace", `${A}/32`, "via", GATEWAY]);
      try {
        expect((await httpGetFrom(a, `http://${B}:9000/`, 1_500)).ok).toBe(false);
        expect(await withoutChain("inet", "forward", async () => (await httpGetFrom(a, `http://${B}:9000/`)).ok)).toBe(true);
      } finally {
        await a.exec("ip", ["route", "del", `${B}/32`]);
        await b.exec("ip", ["route", "del", `${A}/32`]);
      }
    });
  });

  it("cleanupHost leaves nothing of banger behind", async () => {
    await net.cleanupHost();
    const st = await net.status();
    expect(st.bridge.exists).toBe(false);
    expect(st.natTable).toBe(false);
    expect(st.taps).toEqual([]);
    expect((await vmNs.exec("nft", ["list", "tables"])).stdout.trim()).toBe("");
    const names = (await links()).map((l) => l.ifname).sort();
    expect(names).toEqual(["lo", upstream.vmIfname]);
    expect(warnings).toEqual([]);
  });
});

describe.skipIf(skip !== undefined)(`LinuxNetwork without a default route${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  afterAll(async () => {
    await ns?.destroy();
  });

  it("isolates guests, and refuses NAT with a hint to set the uplink", async () => {
    ns = await createNetns("nouplink");
    const net = new LinuxNetwork({ runner: ns.runner, bridge: "bx0", subnet: "10.77.0.0/28", poolSize: 0, natAllow: [], log });
    await net.ensureHost();
    const st = await net.status();
    expect(st.bridge.address).toBe("10.77.0.1/28");
    expect(st.uplink).toBeUndefined();
    const table = (await ns.exec("nft", ["list", "table", "inet", "banger"])).stdout;
    expect(table).not.toMatch(/masquerade/);
    expect(table).toMatch(/iifname "bx0" drop/);
    const err = await net.enableNat("10.77.0.2").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "NETWORK_FAILED", hint: expect.stringMatching(/`uplink`/) });
    expect((await net.status()).natAddresses).toEqual([]);

    // an explicitly configured uplink is used even without a route
    const named = new LinuxNetwork({ runner: ns.runner, bridge: "bx0", subnet: "10.77.0.0/28", uplink: "wan9", poolSize: 0, natAllow: [], log });
    await named.ensureHost();
    await named.enableNat("10.77.0.2");
    expect((await ns.exec("nft", ["list", "table", "inet", "banger"])).stdout).toMatch(/oifname "wan9" masquerade/);
    expect((await named.status()).natAddresses).toEqual(["10.77.0.2"]);
    // with poolSize 0 every TAP is made on demand and deleted on release
    const tap = await named.acquireTap("0123456789abcdef");
    expect(tap).toBe("bt-0123456789");
    await named.releaseTap(tap, "0123456789abcdef");
    expect(await named.listTaps()).toEqual([]);
    await named.cleanupHost();
    expect((await ns.exec("nft", ["list", "tables"])).stdout.trim()).toBe("");
  });
});
