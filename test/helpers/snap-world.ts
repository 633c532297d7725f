import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { BangerError } from "../../src/domain/errors.js";
import type { GuestStream } from "../../src/ports/channel.js";
import type { VmmSnapshots } from "../../src/ports/snapshots.js";
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
    };
  }
  return w;
}
