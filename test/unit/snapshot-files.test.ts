import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { copyFileReflink, sha256File } from "../../src/adapters/disk/files.js";
import { NodeFiles } from "../../src/adapters/fs/node-files.js";
import { checkSnapshot, recordSnapshot } from "../../src/app/snapshot-files.js";
import type { SnapshotContext } from "../../src/domain/snapshot.js";
import { qemuSnapshotArtifacts } from "../../src/adapters/qemu/snapshot.js";

// The record and the check over real files in a temp snapshot directory (the real Files adapter).
describe("snapshot record and check", () => {
  const files = new NodeFiles({ copy: (s, d) => copyFileReflink(s, d), sha256: sha256File });
  let dir: string;
  const now: SnapshotContext = {
    imageId: "img1",
    imageChecksums: { "rootfs.ext4": "a".repeat(64) },
    vmm: { kind: "qemu", version: "7.2.22" },
    shape: { vcpus: 2, memoryMib: 1024 },
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "banger-snaprec-"));
    writeFileSync(join(dir, "state.mig"), "QEVM state bytes");
    writeFileSync(join(dir, "rootfs.ext4"), "");
    truncateSync(join(dir, "rootfs.ext4"), 4 << 20);
    writeFileSync(join(dir, "work.ext4"), "work");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const record = () => recordSnapshot(files, { id: "s1", ...now, artifacts: qemuSnapshotArtifacts(dir), createdAt: "2026-11-26T13:00:00Z" });

  it("records every file with its size and sha256, and the record checks out", async () => {
    const r = await record();
    expect(r.files).toEqual([
      { role: "state", name: "state.mig", sizeBytes: 16, sha256: await sha256File(join(dir, "state.mig")) },
      { role: "rootfs", name: "rootfs.ext4", sizeBytes: 4 << 20, sha256: await sha256File(join(dir, "rootfs.ext4")) },
      { role: "work", name: "work.ext4", sizeBytes: 4, sha256: await sha256File(join(dir, "work.ext4")) },
    ]);
    expect(await checkSnapshot(files, r, dir, now, { deep: true })).toEqual({ usable: true });
  });

  it("refuses a file corrupted in place: the deep check sees it, the shallow one only sees size changes", async () => {
    const r = await record();
    writeFileSync(join(dir, "state.mig"), "QEVM state BYTES");
    expect(await checkSnapshot(files, r, dir, now, { deep: false })).toEqual({ usable: true });
    expect(await checkSnapshot(files, r, dir, now, { deep: true })).toMatchObject({
      usable: false,
      reason: expect.stringMatching(/state file state\.mig is corrupted/),
    });
    writeFileSync(join(dir, "work.ext4"), "work, longer");
    expect(await checkSnapshot(files, r, dir, now, { deep: false })).toEqual({
      usable: false,
      reason: "snapshot s1: work file work.ext4 is 12 bytes, recorded 4 (corrupted or truncated)",
    });
  });

  it("refuses a missing file, and a VMM upgrade before looking at any file", async () => {
    const r = await record();
    rmSync(join(dir, "rootfs.ext4"));
    expect(await checkSnapshot(files, r, dir, now, { deep: false })).toEqual({ usable: false, reason: "snapshot s1: rootfs file rootfs.ext4 is missing" });
    expect(await checkSnapshot(files, r, dir, { ...now, vmm: { kind: "qemu", version: "8.2.0" } }, { deep: true })).toMatchObject({
      usable: false,
      reason: expect.stringMatching(/taken with qemu "7\.2\.22", this host runs "8\.2\.0"/),
    });
  });

  it("will not record a snapshot whose files are missing or outside its directory", async () => {
    rmSync(join(dir, "work.ext4"));
    await expect(record()).rejects.toMatchObject({ code: "DISK_FAILED", message: expect.stringMatching(/work file .* is missing/) });
    const stray = { ...qemuSnapshotArtifacts(dir), state: "/elsewhere/state.mig" };
    await expect(recordSnapshot(files, { id: "s2", ...now, artifacts: stray, createdAt: "x" })).rejects.toMatchObject({ code: "INTERNAL" });
  });
});
