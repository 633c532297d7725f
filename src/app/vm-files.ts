import { join } from "node:path";
import type { Files } from "../ports/files.js";
import type { Vmm, VmmHandle } from "../ports/vmm.js";

/** A VM directory's layout as the app uses it; the drivers name their own sockets (Vmm.controlSocket). */
export const vmFiles = (dir: string) => ({
  rootfs: join(dir, "rootfs.ext4"),
  work: join(dir, "work.ext4"),
  knownHosts: join(dir, "known_hosts"),
});

/** A dead VMM leaves its API/QMP/vsock sockets behind; they would only confuse the next spawn and the leak verifier. */
export async function removeSockets(files: Files, dir: string): Promise<void> {
  for (const f of await files.list(dir).catch(() => [] as string[])) {
    if (f.endsWith(".sock")) await files.remove(join(dir, f));
  }
}

/**
 * After a VMM exited on its own: the driver's leftovers (Firecracker's jail and cgroup; kill() on a
 * process that is gone only cleans up) and then the sockets in the VM dir.
 */
export async function releaseExitedVmm(files: Files, vmm: Vmm, h: VmmHandle | undefined, dir: string): Promise<void> {
  if (h) await vmm.kill(h);
  await removeSockets(files, dir);
}
