import { describe, expect, it } from "vitest";
import {
  bootNetArg,
  gatewayCidr,
  gatewayOf,
  guestAddresses,
  inSubnet,
  intToIp,
  ipToInt,
  isIpv4,
  macForIp,
  netmaskOf,
  prefixLen,
} from "../../src/domain/addr.js";
import { BangerError } from "../../src/domain/errors.js";

describe("addr helpers", () => {
  it("parses and prints IPv4 addresses exactly", () => {
    expect(ipToInt("172.30.0.5")).toBe(0xac1e0005);
    expect(ipToInt("255.255.255.255")).toBe(0xffffffff);
    expect(intToIp(0xffffffff)).toBe("255.255.255.255");
    expect(intToIp(ipToInt("10.1.2.3"))).toBe("10.1.2.3");
    expect(isIpv4("1.2.3.4")).toBe(true);
    for (const bad of ["256.1.1.1", "1.2.3", "01.2.3.4", "1.2.3.4 ", "a.b.c.d", "1.2.3.4; drop"]) {
      expect(isIpv4(bad), bad).toBe(false);
    }
  });

  it("derives gateway, prefix and netmask from the subnet", () => {
    expect(gatewayOf("172.30.0.0/24")).toBe("172.30.0.1");
    expect(gatewayCidr("172.30.0.0/24")).toBe("172.30.0.1/24");
    expect(prefixLen("172.30.0.0/24")).toBe(24);
    expect(netmaskOf("172.30.0.0/24")).toBe("255.255.255.0");
    expect(netmaskOf("10.8.0.0/16")).toBe("255.255.0.0");
    expect(netmaskOf("192.168.7.16/29")).toBe("255.255.255.248");
    // host bits in the configured address are ignored
    expect(gatewayOf("172.30.0.77/24")).toBe("172.30.0.1");
    expect(gatewayOf("192.168.7.20/29")).toBe("192.168.7.17");
  });

  it("lists guest addresses without network, gateway and broadcast", () => {
    const all = [...guestAddresses("192.168.7.16/29")];
    expect(all).toEqual(["192.168.7.18", "192.168.7.19", "192.168.7.20", "192.168.7.21", "192.168.7.22"]);
    const it24 = [...guestAddresses("172.30.0.0/24")];
    expect(it24.length).toBe(253);
    expect(it24[0]).toBe("172.30.0.2");
    expect(it24.at(-1)).toBe("172.30.0.254");
    // a /16 crosses octet boundaries and stays lazy
    const g = guestAddresses("10.8.0.0/16");
    const first300 = Array.from({ length: 300 }, () => g.next().value as string);
    expect(first300[254]).toBe("10.8.1.0");
  });

  it("checks subnet membership", () => {
    expect(inSubnet("172.30.0.9", "172.30.0.0/24")).toBe(true);
    expect(inSubnet("172.30.1.9", "172.30.0.0/24")).toBe(false);
    expect(inSubnet("nope", "172.30.0.0/24")).toBe(false);
  });

  it("rejects unusable subnets with INVALID_CONFIG", () => {
    for (const bad of ["172.30.0.0", "172.30.0.0/31", "172.30.0.0/x", "300.1.1.1/24", "1.2.3.4/24/1"]) {
      try {
        prefixLen(bad);
        expect.unreachable(bad);
      } catch (e) {
        expect(e).toBeInstanceOf(BangerError);
        expect((e as BangerError).code).toBe("INVALID_CONFIG");
      }
    }
  });

  it("derives a deterministic locally administered MAC from the IP", () => {
    expect(macForIp("172.30.0.5")).toBe("02:fc:ac:1e:00:05");
    expect(macForIp("10.0.255.1")).toBe("02:fc:0a:00:ff:01");
    expect(macForIp("172.30.0.5")).toBe(macForIp("172.30.0.5"));
    // bit 1 of the first octet set (local), bit 0 clear (unicast)
    expect(parseInt(macForIp("1.2.3.4").slice(0, 2), 16) & 0b11).toBe(0b10);
    expect(() => macForIp("1.2.3")).toThrow(BangerError);
  });

  it("builds the kernel ip= argument", () => {
    expect(bootNetArg("172.30.0.5", "172.30.0.1", "255.255.255.0", "brave-otter")).toBe("ip=172.30.0.5::172.30.0.1:255.255.255.0:brave-otter:eth0:off");
    expect(() => bootNetArg("172.30.0.5", "172.30.0.1", "255.255.255.0", "a:b")).toThrow(/hostname/);
    expect(() => bootNetArg("172.30.0.5", "172.30.0.1", "255.255.255.0", "a b")).toThrow(BangerError);
    expect(() => bootNetArg("172.30.0.5", "gw", "255.255.255.0", "x")).toThrow(/gateway/);
  });
});

describe("boot network argument with DNS", () => {
  it("appends up to two IPv4 name servers after the autoconf field", async () => {
    const { bootNetArg } = await import("../../src/domain/addr.js");
    expect(bootNetArg("172.30.0.2", "172.30.0.1", "255.255.255.0", "alp", ["10.0.0.53", "bogus", "10.0.0.54", "10.0.0.55"])).toBe(
      "ip=172.30.0.2::172.30.0.1:255.255.255.0:alp:eth0:off:10.0.0.53:10.0.0.54",
    );
  });

  it("reads host name servers but skips loopback stubs", async () => {
    const { hostNameservers } = await import("../../src/adapters/net/resolv.js");
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const f = join(mkdtempSync(join(tmpdir(), "resolv-")), "resolv.conf");
    writeFileSync(f, "# x\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example\nnameserver 192.0.2.2\n");
    expect(hostNameservers(f)).toEqual(["192.0.2.1", "192.0.2.2"]);
    expect(hostNameservers("/nonexistent")).toEqual([]);
  });
});
