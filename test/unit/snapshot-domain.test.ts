import { describe, expect, it } from "vitest";
import { snapshotFilesVerdict, snapshotRecordProblems, snapshotVerdict, type GoldenSnapshot, type SnapshotContext } from "../../src/domain/snapshot.js";

const sha = (c: string) => c.repeat(64);

function golden(over: Partial<GoldenSnapshot> = {}): GoldenSnapshot {
  return {
    id: "snap-1",
    imageId: "img-debian",
    imageChecksums: { vmlinux: sha("a"), "rootfs.ext4": sha("b"), "work-seed.ext4": sha("c") },
    vmm: { kind: "qemu", version: "QEMU emulator version 7.2.22" },
    shape: { vcpus: 2, memoryMib: 1024 },
    files: [
      { role: "state", name: "state.bin", sizeBytes: 90_000_000, sha256: sha("1") },
      { role: "rootfs", name: "rootfs.ext4", sizeBytes: 1 << 30, sha256: sha("2") },
      { role: "work", name: "work.ext4", sizeBytes: 1 << 30, sha256: sha("3") },
    ],
    createdAt: "2026-11-26T13:00:00.000Z",
    ...over,
  };
}

function ctx(over: Partial<SnapshotContext> = {}): SnapshotContext {
  const g = golden();
  return { imageId: g.imageId, imageChecksums: { ...g.imageChecksums }, vmm: { ...g.vmm }, shape: { ...g.shape }, ...over };
}

describe("snapshotVerdict", () => {
  it("accepts a snapshot taken of the same image, VMM version and shape", () => {
    expect(snapshotVerdict(golden(), ctx())).toEqual({ usable: true });
  });

  it("refuses another image, naming both", () => {
    expect(snapshotVerdict(golden(), ctx({ imageId: "img-alpine" }))).toEqual({
      usable: false,
      reason: "snapshot snap-1 belongs to image img-debian, not img-alpine",
    });
  });

  it("refuses a rebuilt image: a changed, added or removed artifact", () => {
    const changed = snapshotVerdict(golden(), ctx({ imageChecksums: { ...golden().imageChecksums, "rootfs.ext4": sha("f") } }));
    expect(changed).toEqual({
      usable: false,
      reason: "image file rootfs.ext4 changed since snapshot snap-1 was taken (sha256 bbbbbbbbbbbb then, ffffffffffff now); take a new snapshot",
    });
    const added = snapshotVerdict(golden(), ctx({ imageChecksums: { ...golden().imageChecksums, "initramfs.cpio.gz": sha("d") } }));
    expect(added).toMatchObject({
      usable: false,
      reason: expect.stringContaining("initramfs.cpio.gz changed since snapshot snap-1 was taken (sha256 (none) then"),
    });
    const { vmlinux: _, ...withoutKernel } = golden().imageChecksums;
    expect(snapshotVerdict(golden(), ctx({ imageChecksums: withoutKernel }))).toMatchObject({
      usable: false,
      reason: expect.stringContaining("vmlinux changed"),
    });
  });

  it("refuses another VMM kind or version", () => {
    expect(snapshotVerdict(golden(), ctx({ vmm: { kind: "firecracker", version: "1.16.1" } }))).toEqual({
      usable: false,
      reason: "snapshot snap-1 was taken with qemu, this VM runs firecracker",
    });
    expect(snapshotVerdict(golden(), ctx({ vmm: { kind: "qemu", version: "QEMU emulator version 8.0.0" } }))).toEqual({
      usable: false,
      reason: 'snapshot snap-1 was taken with qemu "QEMU emulator version 7.2.22", this host runs "QEMU emulator version 8.0.0"; take a new snapshot',
    });
  });

  it("refuses another shape: vCPUs or memory", () => {
    expect(snapshotVerdict(golden(), ctx({ shape: { vcpus: 4, memoryMib: 1024 } }))).toEqual({
      usable: false,
      reason: "snapshot snap-1 has 2 vCPUs / 1024 MiB, this VM asks for 4 vCPUs / 1024 MiB",
    });
    expect(snapshotVerdict(golden({ shape: { vcpus: 1, memoryMib: 512 } }), ctx({ shape: { vcpus: 1, memoryMib: 1024 } }))).toMatchObject({
      reason: "snapshot snap-1 has 1 vCPU / 512 MiB, this VM asks for 1 vCPU / 1024 MiB",
    });
  });

  it("puts the image before the VMM and the shape when several things changed", () => {
    const v = snapshotVerdict(golden(), ctx({ imageId: "other", vmm: { kind: "qemu", version: "9" }, shape: { vcpus: 8, memoryMib: 8 } }));
    expect(v).toMatchObject({ usable: false, reason: expect.stringContaining("belongs to image") });
  });

  it("refuses a malformed record before comparing anything", () => {
    const noMemory = golden({ vmm: { kind: "firecracker", version: "1.16.1" } });
    expect(snapshotRecordProblems(noMemory)).toEqual(["no memory file"]);
    expect(snapshotVerdict(noMemory, ctx({ vmm: { kind: "firecracker", version: "1.16.1" } }))).toEqual({
      usable: false,
      reason: "snapshot snap-1 is malformed: no memory file",
    });
    const bad = golden({
      files: [
        { role: "state", name: "a/state.bin", sizeBytes: -1, sha256: "nothex" },
        { role: "state", name: "s2", sizeBytes: 1, sha256: sha("e") },
      ],
      shape: { vcpus: 0, memoryMib: 1.5 },
    });
    expect(snapshotRecordProblems(bad)).toEqual([
      "no rootfs file",
      "no work file",
      "more than one state file",
      "a/state.bin: checksum is not a sha256",
      "a/state.bin: size -1 is not a byte count",
      'file name "a/state.bin" is not a plain name in the snapshot directory',
      "vcpus 0 is not a positive integer",
      "memory 1.5 MiB is not a positive integer",
    ]);
    expect(snapshotRecordProblems(golden())).toEqual([]);
  });
});

describe("snapshotFilesVerdict", () => {
  const onDisk = () => Object.fromEntries(golden().files.map((f) => [f.name, f.sha256])) as Record<string, string | undefined>;

  it("accepts files whose checksums match the record", () => {
    expect(snapshotFilesVerdict(golden(), onDisk())).toEqual({ usable: true });
  });

  it("refuses a missing file and a corrupted one, naming the role and the file", () => {
    expect(snapshotFilesVerdict(golden(), { ...onDisk(), "work.ext4": undefined })).toEqual({
      usable: false,
      reason: "snapshot snap-1: work file work.ext4 is missing",
    });
    expect(snapshotFilesVerdict(golden(), { ...onDisk(), "state.bin": sha("9") })).toEqual({
      usable: false,
      reason: "snapshot snap-1: state file state.bin is corrupted (sha256 999999999999, recorded 111111111111)",
    });
  });
});
