import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveFirecracker } from "../../src/adapters/firecracker/resolve.js";
import { BangerError } from "../../src/domain/errors.js";

const dir = mkdtempSync(join(tmpdir(), "fcresolve-"));
const binDir = join(dir, "bin");
mkdirSync(binDir);
const exe = join(binDir, "firecracker");
writeFileSync(exe, "#!/bin/sh\n");
chmodSync(exe, 0o755);
const notExe = join(dir, "not-executable");
writeFileSync(notExe, "");
chmodSync(notExe, 0o644);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function notFound(fn: () => unknown): BangerError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BangerError);
    return e as BangerError;
  }
  throw new Error("expected VMM_NOT_FOUND");
}

describe("resolveFirecracker", () => {
  it("accepts an explicit executable path", () => {
    expect(resolveFirecracker(exe)).toBe(exe);
  });

  it("makes a relative configured path absolute", () => {
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      expect(resolveFirecracker("./bin/firecracker")).toBe(exe);
    } finally {
      process.chdir(cwd);
    }
  });

  it("finds firecracker on PATH when no bin is configured", () => {
    expect(resolveFirecracker(undefined, `/nonexistent:${binDir}`)).toBe(exe);
  });

  it("rejects a configured path that is missing, not executable or a directory", () => {
    for (const bad of [join(dir, "absent"), notExe, binDir]) {
      const e = notFound(() => resolveFirecracker(bad));
      expect(e.code).toBe("VMM_NOT_FOUND");
      expect(e.hint).toContain("firecracker_bin");
      expect(e.hint).toContain('vmm = "qemu"');
    }
  });

  it("reports VMM_NOT_FOUND when nothing is on PATH", () => {
    const e = notFound(() => resolveFirecracker(undefined, "/nonexistent"));
    expect(e.code).toBe("VMM_NOT_FOUND");
    expect(e.message).toContain("PATH");
  });
});
