import { describe, expect, it } from "vitest";
import { buildDigest, sha256Hex, stepDigests } from "../../src/app/build-digest.js";
import { PACKAGE_COMMANDS, describeBuild, packageManagerFor, parseDurationMs, parseSize, validatePackages } from "../../src/domain/build.js";
import { BangerError } from "../../src/domain/errors.js";

describe("image build domain", () => {
  it("parses build timeouts as the CLI's --timeout and the web form write them", () => {
    expect(parseDurationMs("30m")).toBe(1_800_000);
    expect(parseDurationMs("90s")).toBe(90_000);
    expect(parseDurationMs(" 2h ")).toBe(7_200_000);
    expect(parseDurationMs("45")).toBe(45_000);
    for (const bad of ["", "0", "0m", "1.5h", "10 minutes", "-5m"]) expect(() => parseDurationMs(bad), bad).toThrow(BangerError);
  });
  it("parses sizes with binary suffixes and refuses anything else", () => {
    expect(parseSize("2G")).toBe(2 * 1024 ** 3);
    expect(parseSize("1536M")).toBe(1536 * 1024 ** 2);
    expect(parseSize("2GiB")).toBe(2 * 1024 ** 3);
    expect(parseSize("4096")).toBe(4096);
    for (const bad of ["", "0", "2 gigs", "-1G", "1.5G", "2P"]) expect(() => parseSize(bad)).toThrow(BangerError);
  });

  it("maps os labels to their package manager, and each manager to its own command line", () => {
    expect(["debian", "ubuntu", "alpine", "void", "linux"].map(packageManagerFor)).toEqual(["apt", "apt", "apk", "xbps", undefined]);
    expect(PACKAGE_COMMANDS.xbps(["jq", "git"])).toBe("xbps-install -Sy jq git");
    expect(validatePackages([" jq ", "", "git"])).toEqual(["jq", "git"]);
  });

  it("digests each step and the whole build; a change in any step changes the build digest", () => {
    const steps = [{ kind: "run" as const, command: "echo hi" }];
    const a = stepDigests(["jq"], steps);
    expect(a.map((s) => s.kind)).toEqual(["packages", "run"]);
    expect(a[1].sha256).toBe(sha256Hex("echo hi"));
    expect(buildDigest(a)).not.toBe(buildDigest(stepDigests(["jq"], [{ kind: "run", command: "echo ho" }])));
    expect(buildDigest(a)).not.toBe(buildDigest(stepDigests([], steps)));
    const info = { parent: "debian-12-1", parentId: "x", digest: buildDigest(a), steps: a, nat: false, stages: [] };
    expect(describeBuild(info)).toBe(`built from debian-12-1 by script sha256:${buildDigest(a)}`);
  });
});
