import { spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * Boots the image `make image-debian` built with plain QEMU (images/debian/smoke.sh)
 * and checks the guest contract banger relies on. The build itself is too slow for
 * the test suite, so this only runs when an image exists.
 */

const REPO = resolve(import.meta.dirname, "../..");
const IMAGE = join(REPO, "build/images/debian/latest");
const SMOKE = join(REPO, "images/debian/smoke.sh");
const SMOKE_TIMEOUT_MS = 840_000;

function which(cmd: string): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => existsSync(join(d, cmd)));
}

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (netns + tap)";
  if (!existsSync(join(IMAGE, "manifest.json"))) return "no image in build/images/debian/latest: run `make image-debian`";
  for (const c of ["qemu-system-x86_64", "debugfs", "ssh", "ssh-keygen", "ip"]) if (!which(c)) return `${c} not installed`;
  return undefined;
}

interface Manifest {
  name: string;
  os: string;
  kernel: { release: string };
  opencode: { version: string };
  files: { file: string; sizeBytes: number; sha256: string }[];
  packages: { name: string; version: string }[];
}

function runSmoke(): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const child = spawn("bash", [SMOKE, IMAGE, "1"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    // SIGTERM, not SIGKILL: smoke.sh turns it into an exit that deletes its netns.
    const timer = setTimeout(() => child.kill("SIGTERM"), SMOKE_TIMEOUT_MS);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, out });
    });
  });
}

const skip = skipReason();

describe.skipIf(skip)(`built Debian image${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("has a manifest that matches the artifacts on disk", () => {
    const m = JSON.parse(readFileSync(join(IMAGE, "manifest.json"), "utf8")) as Manifest;
    expect(m.os).toBe("debian");
    expect(m.name).toMatch(/^debian-12-\d{8}-[0-9a-f]{8}$/);
    expect(m.kernel.release).toMatch(/cloud-amd64$/);
    expect(m.packages.map((p) => p.name)).toEqual(expect.arrayContaining(["openssh-server", "systemd-sysv", "iproute2"]));
    expect(m.files.map((f) => f.file).sort()).toEqual(["initramfs.cpio.gz", "rootfs.ext4", "vmlinux", "work-seed.ext4"]);
    for (const f of m.files) {
      expect(statSync(join(IMAGE, f.file)).size).toBe(f.sizeBytes);
      expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it("boots under QEMU and satisfies the guest contract (ssh, hostname from ip=, /root on vdb, opencode)", async () => {
    const { code, out } = await runSmoke();
    if (code !== 0) console.error(out);
    expect(out).toMatch(/run 1: ssh after [\d.]+s, opencode listening after [\d.]+s/);
    expect(out).not.toMatch(/FAIL/);
    expect(out).toContain("smoke: all checks passed");
    expect(code).toBe(0);
  });
});
