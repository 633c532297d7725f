import { describe, expect, it } from "vitest";
import { parseSetElements, renderRuleset } from "../../src/adapters/net/nft.js";
import { BangerError } from "../../src/domain/errors.js";

describe("renderRuleset", () => {
  it("writes masquerade, isolation and port blocking for a bridge with an uplink", () => {
    const script = renderRuleset({ bridge: "banger0", uplink: "eth0", blockedHostPorts: [7781, 7780, 7780] });
    const lines = script.trim().split("\n");
    expect(lines).toContain("add set ip banger nat_guests { type ipv4_addr; }");
    expect(lines).toContain('add rule ip banger postrouting ip saddr @nat_guests oifname "eth0" masquerade');
    expect(lines).toContain('add rule ip banger forward iifname "banger0" ip saddr @nat_guests oifname "eth0" accept');
    expect(lines).toContain('add rule ip banger input iifname "banger0" tcp dport { 7780, 7781 } drop');
    // replies are accepted before the catch-all drop of guest traffic
    const est = lines.indexOf("add rule ip banger forward ct state established,related accept");
    const drop = lines.indexOf('add rule ip banger forward iifname "banger0" drop');
    expect(est).toBeGreaterThan(-1);
    expect(drop).toBeGreaterThan(est);
    // chains are flushed before rules are re-added, so applying twice is idempotent
    expect(lines.indexOf("flush chain ip banger forward")).toBeLessThan(est);
    // nothing outside banger's own table is named
    for (const l of lines) expect(l).toMatch(/ ip banger( |$)/);
  });

  it("isolates guests but masquerades nothing without an uplink", () => {
    const script = renderRuleset({ bridge: "br-x", blockedHostPorts: [] });
    expect(script).not.toMatch(/masquerade/);
    expect(script).not.toMatch(/oifname/);
    expect(script).toMatch(/add rule ip banger forward iifname "br-x" drop/);
    expect(script).not.toMatch(/dport/);
  });

  it("refuses interface names and ports that could break the script", () => {
    expect(() => renderRuleset({ bridge: 'x" ; flush ruleset', blockedHostPorts: [] })).toThrow(BangerError);
    expect(() => renderRuleset({ bridge: "banger0", uplink: "averyveryverylongname", blockedHostPorts: [] })).toThrow(/uplink/);
    expect(() => renderRuleset({ bridge: "banger0", blockedHostPorts: [70000] })).toThrow(/port/);
  });
});

describe("parseSetElements", () => {
  it("reads plain and wrapped elements from nft -j output", () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: "1.0.6" } },
        { set: { family: "ip", name: "nat_guests", table: "banger", type: "ipv4_addr", elem: ["172.30.0.9", { elem: { val: "172.30.0.3", counter: {} } }] } },
      ],
    });
    expect(parseSetElements(json)).toEqual(["172.30.0.3", "172.30.0.9"]);
  });

  it("returns nothing for an empty set", () => {
    const json = JSON.stringify({ nftables: [{ set: { name: "nat_guests", table: "banger" } }] });
    expect(parseSetElements(json)).toEqual([]);
  });
});
