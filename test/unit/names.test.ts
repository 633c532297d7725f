import { describe, expect, it } from "vitest";
import { NameGenerator, nameProblem, seededRandom, validateImageName, validateName } from "../../src/domain/names.js";
import { BangerError } from "../../src/domain/errors.js";

describe("VM names", () => {
  it("accepts DNS labels", () => {
    for (const n of ["a", "dev-box-1", "x".repeat(63), "0abc"]) expect(nameProblem(n)).toBeUndefined();
  });

  it.each([
    ["", "is empty"],
    ["x".repeat(64), "limit is 63"],
    ["a/b", "'/'"],
    ["a..b", "'..'"],
    ["a b", "whitespace"],
    ["Dev", "uppercase"],
    ["-dev", "DNS label"],
    ["dev-", "DNS label"],
    ["dev_box", "DNS label"],
  ])("rejects %j with a reason", (name, reason) => {
    expect(nameProblem(name)).toContain(reason);
    expect(() => validateName(name, "VM")).toThrowError(BangerError);
    try {
      validateName(name, "VM");
    } catch (e) {
      expect((e as BangerError).code).toBe("INVALID_NAME");
      expect((e as BangerError).hint).toMatch(/lowercase/);
    }
  });

  it("image names may contain dots but not '..'", () => {
    expect(validateImageName("alpine-3.22.2-1")).toBe("alpine-3.22.2-1");
    expect(() => validateImageName("a..b")).toThrow(/'\.\.'/);
    expect(() => validateImageName(".hidden")).toThrow(BangerError);
  });
});

describe("NameGenerator", () => {
  it("is deterministic under a seed", () => {
    const a = new NameGenerator(seededRandom(42));
    const b = new NameGenerator(seededRandom(42));
    const seqA = Array.from({ length: 5 }, () => a.next(() => false));
    const seqB = Array.from({ length: 5 }, () => b.next(() => false));
    expect(seqA).toEqual(seqB);
    for (const n of seqA) expect(nameProblem(n)).toBeUndefined();
  });

  it("never returns a taken name", () => {
    const taken = new Set<string>();
    const gen = new NameGenerator(seededRandom(7));
    for (let i = 0; i < 3000; i++) {
      const n = gen.next((x) => taken.has(x));
      expect(taken.has(n)).toBe(false);
      expect(nameProblem(n)).toBeUndefined();
      taken.add(n);
    }
  });
});
