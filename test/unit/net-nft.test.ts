import { describe, expect, it } from "vitest";
import { parseSetElements, renderPeers, renderRuleset } from "../../src/adapters/net/nft.js";
import { BangerError } from "../../src/domain/errors.js";

const lines = (s: string) => s.trim().split("\n");
const at = (ls: string[], l: string) => {
  const i = ls.indexOf(l);
  expect(i, l).toBeGreaterThan(-1);
  return i;
};

describe("renderRuleset", () => {
  const ls = lines(renderRuleset({ bridge: "banger0", uplink: "eth0", natAllow: ["10.1.2.0/24", "10.1.2.0/24"] }));
  const t = "inet banger";

  it("drops everything guests send to the host except replies, in a chain ahead of the default filter priority", () => {
    at(ls, `add chain ${t} input { type filter hook input priority filter - 10; policy accept; }`);
    const est = at(ls, `add rule ${t} input iifname "banger0" ct state established,related accept`);
    const drop = at(ls, `add rule ${t} input iifname "banger0" drop`);
    expect(drop).toBe(est + 1);
    // no port is opened to guests by default, the web port included
    expect(ls.filter((l) => l.includes(" input ") && l.includes("dport"))).toEqual([]);
  });

  it("forwards only NAT members to the uplink, the allow-list before the deny-list", () => {
    const allow = at(ls, `add rule ${t} forward iifname "banger0" ip saddr @nat_guests oifname "eth0" ip daddr @nat_allow accept`);
    const deny = at(ls, `add rule ${t} forward iifname "banger0" ip daddr @nat_deny drop`);
    const nat = at(ls, `add rule ${t} forward iifname "banger0" ip saddr @nat_guests oifname "eth0" accept`);
    const last = at(ls, `add rule ${t} forward iifname "banger0" drop`);
    expect(allow).toBeLessThan(deny);
    expect(deny).toBeLessThan(nat);
    expect(nat).toBeLessThan(last);
    at(ls, `add rule ${t} postrouting ip saddr @nat_guests oifname "eth0" masquerade`);
    // the configured range once, although it was given twice
    at(ls, `add element ${t} nat_allow { 10.1.2.0/24 }`);
  });

  it("lets NAT guests reach the name servers they are given, on port 53 only, ahead of the deny list", () => {
    const ls2 = lines(renderRuleset({ bridge: "banger0", uplink: "eth0", natAllow: [], nameservers: ["192.168.1.1", "192.168.1.1", "bogus"] }));
    at(ls2, `add element ${t} nat_dns { 192.168.1.1 }`);
    const dns = at(
      ls2,
      `add rule ${t} forward iifname "banger0" ip saddr @nat_guests oifname "eth0" ip daddr @nat_dns meta l4proto { tcp, udp } th dport 53 accept`,
    );
    expect(dns).toBeLessThan(at(ls2, `add rule ${t} forward iifname "banger0" ip daddr @nat_deny drop`));
    expect(ls).not.toContain(`add element ${t} nat_dns { 192.168.1.1 }`);
  });

  it("denies metadata, private, shared and loopback ranges by default", () => {
    const deny = ls.find((l) => l.startsWith(`add element ${t} nat_deny`))!;
    for (const r of ["169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8"]) expect(deny).toContain(r);
    // the test upstream (TEST-NET-2) and ordinary public space stay reachable
    expect(deny).not.toContain("198.51.100.0/24");
  });

  it("lets nothing new through towards the guests or between them through the gateway", () => {
    const rep = at(ls, `add rule ${t} forward oifname "banger0" ct state established,related accept`);
    const inb = at(ls, `add rule ${t} forward oifname "banger0" drop`);
    expect(inb).toBe(rep + 1);
    const peer = at(ls, `add rule ${t} forward iifname "banger0" oifname "banger0" meta mark & 0x00420000 == 0x00420000 accept`);
    const hair = at(ls, `add rule ${t} forward iifname "banger0" oifname "banger0" drop`);
    expect(hair).toBe(peer + 1);
    expect(hair).toBeLessThan(rep);
  });

  it("keeps guest frames apart on the bridge unless a pair is in the peer set", () => {
    const accept = at(ls, "add rule bridge banger forward iifname . oifname @peers meta mark set meta mark | 0x00420000 accept");
    for (const p of ["tap-pool-*", "bt-*"]) {
      expect(at(ls, `add rule bridge banger forward iifname "${p}" drop`)).toBeGreaterThan(accept);
      expect(at(ls, `add rule bridge banger forward oifname "${p}" drop`)).toBeGreaterThan(accept);
    }
  });

  it("is idempotent: tables and sets are added, chains and policy sets flushed before rules, the old ip table removed", () => {
    const firstRule = ls.findIndex((l) => l.startsWith("add rule"));
    for (const c of ["postrouting", "forward", "input"]) expect(at(ls, `flush chain ${t} ${c}`)).toBeLessThan(firstRule);
    expect(at(ls, `flush set ${t} nat_deny`)).toBeLessThan(firstRule);
    expect(ls).not.toContain(`flush set ${t} nat_guests`);
    expect(ls).not.toContain("flush set bridge banger peers");
    expect(ls.slice(0, 2)).toEqual(["add table ip banger", "delete table ip banger"]);
    for (const l of ls.slice(2)) expect(l).toMatch(/ (inet|bridge) banger( |$)/);
  });

  it("without an uplink isolates guests and masquerades nothing", () => {
    const script = renderRuleset({ bridge: "br-x", natAllow: [] });
    expect(script).not.toMatch(/masquerade|oifname "eth|add element inet banger nat_allow/);
    expect(script).toMatch(/add rule inet banger forward iifname "br-x" drop/);
    expect(script).toMatch(/add rule inet banger input iifname "br-x" drop/);
  });

  it("refuses interface names and ranges that could break the script or open more than written", () => {
    expect(() => renderRuleset({ bridge: 'x" ; flush ruleset', natAllow: [] })).toThrow(BangerError);
    expect(() => renderRuleset({ bridge: "banger0", uplink: "averyveryverylongname", natAllow: [] })).toThrow(/uplink/);
    expect(() => renderRuleset({ bridge: "banger0", natAllow: ["10.1.2.5/24"] })).toThrow(/host bits/);
    expect(() => renderRuleset({ bridge: "banger0", natAllow: ["10.0.0.0/8 } ; flush ruleset"] })).toThrow(/nat.allow/);
  });
});

describe("renderPeers", () => {
  it("replaces the set with both directions of every pair", () => {
    expect(lines(renderPeers([["tap-pool-0", "bt-abc"]]))).toEqual([
      "add table bridge banger",
      "add set bridge banger peers { type ifname . ifname; }",
      "flush set bridge banger peers",
      'add element bridge banger peers { "tap-pool-0" . "bt-abc", "bt-abc" . "tap-pool-0" }',
    ]);
    expect(lines(renderPeers([])).at(-1)).toBe("flush set bridge banger peers");
  });

  it("refuses devices that are not banger TAPs", () => {
    expect(() => renderPeers([["eth0", "tap-pool-1"]])).toThrow(/not a banger TAP/);
    expect(() => renderPeers([['bt-x" . "eth0', "tap-pool-1"]])).toThrow(BangerError);
  });
});

describe("parseSetElements", () => {
  it("reads plain and wrapped elements from nft -j output", () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6" } },
        { set: { family: "inet", name: "nat_guests", table: "banger", type: "ipv4_addr", elem: ["172.30.0.9", { elem: { val: "172.30.0.3", counter: {} } }] } },
      ],
    });
    expect(parseSetElements(json)).toEqual(["172.30.0.3", "172.30.0.9"]);
  });

  it("reads concatenated elements of the peer set", () => {
    const json = JSON.stringify({ nftables: [{ set: { name: "peers", elem: [{ concat: ["tap-pool-0", "bt-abc"] }] } }] });
    expect(parseSetElements(json, "peers")).toEqual(["tap-pool-0 . bt-abc"]);
  });

  it("returns nothing for an empty set", () => {
    const json = JSON.stringify({ nftables: [{ set: { name: "nat_guests", table: "banger" } }] });
    expect(parseSetElements(json)).toEqual([]);
  });
});
