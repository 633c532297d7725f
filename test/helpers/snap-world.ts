import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { BangerError } from "../../src/domain/errors.js";
import type { GuestStream } from "../../src/ports/channel.js";
import type { VmmSnapshots } from "../../src/ports/snapshots.js";
import { imageChecksums, snapshotDirOf, writeSnapshot, type StoredSnapshot } from "../../src/app/snapshot-record.js";
import { world } from "./app-world.js";

// The unit-test world of `image snapshot`: the app's own plan over faked ports, with a snapshot
// driver that writes QEMU's three files and a guest channel that accepts.

/** A snapshot driver that writes the three QEMU files, or fails at the snapshot itself. */
export function fakeSnaps(fail = false): VmmSnapshots {
  return {
    kind: "qemu",
    snapshot: async (_h, _spec, dir) => {
      if (fail) throw new BangerError("VMM_FAILED", "snapshot migration failed: No space left on device");
      for (const f of ["state.mig", "rootfs.ext4", "work.ext4"]) writeFileSync(join(dir, f), f);
      return {
        artifacts: { kind: "qemu", dir, state: join(dir, "state.mig"), rootfs: join(dir, "rootfs.ext4"), work: join(dir, "work.ext4") },
        timing: { pauseMs: 1, stateMs: 2, disksMs: 3 },
      };
    },
    restore: () => Promise.reject(new Error("unused")),
    resume: () => Promise.reject(new Error("unused")),
  };
}

export function snapWorld(opts: { fail?: boolean; channel?: boolean } = {}) {
  const execs: string[] = [];
  const w = Object.assign(
    world(undefined, 0, {
      snapshots: fakeSnaps(opts.fail),
      channelProxy: ["/bin/true"],
      exec: (c) => {
        execs.push(c);
        return { code: 0, stdout: "", stderr: "" };
      },
    }),
    { execs },
  );
  if (opts.channel !== false) {
    w.d.channel = {
      open: async () => ({ stream: new PassThrough() as unknown as GuestStream, via: "virtio-serial" }),
      run: () => Promise.reject(new Error("image snapshot runs no script over the channel")),
      ready: () => Promise.reject(new Error("image snapshot waits for no readiness over the channel")),
      release: () => undefined,
    };
  }
  return w;
}

const SHA = "0".repeat(64); // the world's Files port hashes every file to this

export interface SnapshotOverrides {
  id?: string;
  version?: string;
  stateBytes?: number;
  workDiskGib?: number;
}

/** A golden snapshot of deb-1 on disk at the world's default shape, as `image snapshot` leaves it. */
export async function withSnapshot(w: ReturnType<typeof world>, over: SnapshotOverrides = {}): Promise<StoredSnapshot> {
  const image = w.store.getImage("deb-1")!;
  const dir = snapshotDirOf(w.d.config.imagesDir, image.id);
  mkdirSync(dir, { recursive: true });
  const files = [
    { role: "state" as const, name: "state.mig", sizeBytes: 10 },
    { role: "rootfs" as const, name: "rootfs.ext4", sizeBytes: 6 },
    { role: "work" as const, name: "work.ext4", sizeBytes: 4 },
  ];
  for (const f of files) writeFileSync(join(dir, f.name), "x".repeat(f.name === "state.mig" ? (over.stateBytes ?? f.sizeBytes) : f.sizeBytes));
  const s: StoredSnapshot = {
    record: {
      id: over.id ?? "snap-1",
      imageId: image.id,
      imageChecksums: imageChecksums(image),
      vmm: { kind: "qemu", version: over.version ?? "fake" },
      shape: { vcpus: w.d.config.vcpus, memoryMib: w.d.config.memoryMib },
      files: files.map((f) => ({ ...f, sha256: SHA })),
      createdAt: new Date().toISOString(),
    },
    hostPublicKey: "ssh-ed25519 GOLDEN golden",
    ip: "172.30.0.9",
    mac: "02:fc:ac:1e:00:09",
    bootArgs: "console=ttyS0 ip=172.30.0.9::172.30.0.1:255.255.255.0:golden-x:eth0:off",
    workDiskGib: over.workDiskGib ?? w.d.config.workDiskGib,
    stages: [],
  };
  await writeSnapshot(w.d.files, dir, s);
  return s;
}
