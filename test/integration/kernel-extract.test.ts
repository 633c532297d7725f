import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO } from "../helpers/daemon.js";

// A real bzImage: Debian's cloud kernel package, from apt's cache or `apt-get download`
// (CI has the Debian archive). The same extractor serves Alpine's vmlinuz-virt.
const tmp = mkdtempSync(join(tmpdir(), "banger-kx-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function kernelDeb(): string | undefined {
  const cached = "/var/cache/apt/archives";
  const hit = (() => {
    try {
      return readdirSync(cached).find((f) => /^linux-image-[0-9].*-cloud-amd64_.*\.deb$/.test(f));
    } catch {
      return undefined;
    }
  })();
  if (hit) return join(cached, hit);
  const dep = spawnSync("apt-cache", ["depends", "linux-image-cloud-amd64"], { encoding: "utf8", timeout: 60_000 });
  const pkg = /Depends: (linux-image-[0-9]\S+)/.exec(dep.stdout ?? "")?.[1];
  if (!pkg) return undefined;
  spawnSync("apt-get", ["download", "-qq", pkg], { cwd: tmp, timeout: 300_000 });
  const got = readdirSync(tmp).find((f) => f.startsWith(pkg) && f.endsWith(".deb"));
  return got && join(tmp, got);
}

const deb = process.platform === "linux" ? kernelDeb() : undefined;
const skip = deb ? undefined : "needs a Debian linux-image-*-cloud-amd64 package (apt-get download; CI has the archive)";
const extract = (bz: string, out: string) =>
  spawnSync("bash", [join(REPO, "images/lib/kernel.sh"), "--extract", bz, out], { encoding: "utf8", timeout: 300_000 });

describe.skipIf(skip)(`vmlinux extraction from a real bzImage${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("finds the compressed payload and writes an x86-64 ELF", () => {
    const root = join(tmp, "deb");
    expect(spawnSync("dpkg-deb", ["-x", deb!, root]).status).toBe(0);
    const vmlinuz = readdirSync(join(root, "boot")).find((f) => f.startsWith("vmlinuz-"))!;
    const out = join(tmp, "vmlinux");
    const r = extract(join(root, "boot", vmlinuz), out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/vmlinux: (lz4|zstd|xz|gzip) payload at offset \d+/);
    const elf = readFileSync(out).subarray(0, 20);
    expect(elf.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    expect(elf[4]).toBe(2); // 64-bit
    expect(elf.readUInt16LE(18)).toBe(0x3e); // x86-64
    expect(statSync(out).size).toBeGreaterThan(statSync(join(root, "boot", vmlinuz)).size);
  });
});

describe("vmlinux extraction refuses what is not a kernel", () => {
  it("says so and leaves no output", () => {
    const junk = join(tmp, "junk");
    writeFileSync(junk, Buffer.alloc(4096, 7));
    const r = extract(junk, join(tmp, "junk.vmlinux"));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no x86-64 ELF found inside .*junk/);
    expect(() => statSync(join(tmp, "junk.vmlinux"))).toThrow();
  });
});
