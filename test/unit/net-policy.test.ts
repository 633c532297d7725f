import { describe, expect, it } from "vitest";
import { cidrProblem, NAT_DENY_V4, parseCidrList } from "../../src/domain/cidr.js";
import { formatForward, parseForward } from "../../src/domain/forwards.js";
import { loadConfig } from "../../src/config/load.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

describe("CIDR validation for nat.allow", () => {
  it("accepts canonical IPv4 ranges", () => {
    for (const c of ["10.1.2.0/24", "0.0.0.0/0", "192.168.1.7/32", "100.64.0.0/10"]) expect(cidrProblem(c), c).toBeUndefined();
    for (const c of NAT_DENY_V4) expect(cidrProblem(c), c).toBeUndefined();
  });

  it("refuses host bits, bad prefixes, v6 and anything that is not a range", () => {
    expect(cidrProblem("10.1.2.5/24")).toMatch(/host bits set; the range it names is 10\.1\.2\.0\/24/);
    expect(cidrProblem("10.1.2.0/33")).toMatch(/above 32/);
    expect(cidrProblem("10.1.2.0")).toMatch(/not an IPv4 CIDR/);
    expect(cidrProblem("256.1.2.0/24")).toMatch(/not an IPv4 CIDR/);
    expect(cidrProblem("fd00::/8")).toMatch(/not an IPv4 CIDR/);
    expect(cidrProblem("10.0.0.0/8, 0.0.0.0/0")).toMatch(/not an IPv4 CIDR/);
  });

  it("deduplicates and names the key in its error", () => {
    expect(parseCidrList(["10.1.2.0/24", "10.1.2.0/24"], "nat.allow")).toEqual(["10.1.2.0/24"]);
    expect(() => parseCidrList(["10.1.2.1/24"], "nat.allow")).toThrow(/nat.allow/);
  });

  it("is checked when the config loads, with the key named", () => {
    const dir = mkdtempSync(join(tmpdir(), "banger-cfg-"));
    const file = join(dir, "c.toml");
    const load = () => loadConfig({ env: { env: { BANGER_CONFIG: file }, uid: 1000, home: dir } });
    writeFileSync(file, '[nat]\nallow = ["10.1.2.0/24"]\n');
    const ok = load();
    expect(ok.config.nat.allow).toEqual(["10.1.2.0/24"]);
    expect(ok.sources["nat.allow"]).toMatch(/^file:/);
    writeFileSync(file, '[nat]\nallow = ["10.1.2.9/24"]\n');
    expect(load).toThrow(/nat\.allow\.0.*host bits/);
    writeFileSync(file, '[nat]\ndeny = ["10.0.0.0/8"]\n');
    expect(load).toThrow(/unknown key 'nat.deny'/);
  });
});

describe("port forward specs", () => {
  it("parses hostport:guestport on 127.0.0.1 and addr:hostport:guestport", () => {
    expect(parseForward("18080:4096")).toEqual({ hostAddress: "127.0.0.1", hostPort: 18080, guestPort: 4096 });
    expect(parseForward("0.0.0.0:8080:80")).toEqual({ hostAddress: "0.0.0.0", hostPort: 8080, guestPort: 80 });
    expect(parseForward("8080:80", "192.0.2.4")).toEqual({ hostAddress: "192.0.2.4", hostPort: 8080, guestPort: 80 });
    expect(formatForward(parseForward("8080:80"))).toBe("127.0.0.1:8080 -> 80");
  });

  it("refuses malformed specs with the expected form in the hint", () => {
    for (const bad of ["8080", "0:80", "8080:65536", "a:80", "localhost:8080:80", "1:2:3:4", "::1:80:80"]) {
      expect(() => parseForward(bad), bad).toThrow(expect.objectContaining({ code: "BAD_REQUEST", hint: expect.stringMatching(/8080:80|127\.0\.0\.1/) }));
    }
  });
});
