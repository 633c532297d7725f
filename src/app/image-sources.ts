import { posix } from "node:path";
import { BangerError } from "../domain/errors.js";
import type { ArtifactRole } from "../domain/types.js";
import type { Files, PinnedFile } from "../ports/files.js";

const ROLE_FLAG: Record<ArtifactRole, string> = {
  kernel: "--kernel",
  initrd: "--initrd",
  rootfs: "--rootfs",
  work_seed: "--work-seed",
};

function isUnder(dir: string, path: string): boolean {
  const d = dir.endsWith("/") ? dir : `${dir}/`;
  return path === dir || path.startsWith(d);
}

/** The request field of each role, so a form can show the refusal beside its input. */
const ROLE_FIELD: Record<ArtifactRole, string> = { kernel: "kernel", initrd: "initrd", rootfs: "rootfs", work_seed: "workSeed" };

function refuse(role: ArtifactRole, path: string, problem: string): BangerError {
  return new BangerError("PATH_NOT_ALLOWED", `${ROLE_FLAG[role]} ${path}: ${problem}`, {
    field: ROLE_FIELD[role],
    hint: "register files from your build output (an absolute path outside banger's state_dir); banger's own images, VM disks and keys are not inputs",
  });
}

/**
 * Opens the files an API caller names for `image register`, refusing what is not the caller's
 * to hand over: relative paths, and anything that is, or resolves through a symlink to, a file
 * under the state dir (other VMs' disks, banger's keys, the database). Each file is pinned by its
 * descriptor, so the checks and the copy read the inode that was vetted; the caller closes them.
 */
export async function pinImageSources(
  files: Files,
  stateDir: string | undefined,
  sources: [ArtifactRole, string | undefined][],
): Promise<Map<ArtifactRole, PinnedFile>> {
  const roots = stateDir === undefined ? [] : [...new Set([posix.normalize(stateDir), (await files.realpath(stateDir)) ?? posix.normalize(stateDir)])];
  const pinned = new Map<ArtifactRole, PinnedFile>();
  try {
    for (const [role, path] of sources) {
      if (path === undefined) continue;
      if (!path.startsWith("/")) throw refuse(role, path, "must be an absolute path");
      if (roots.some((r) => isUnder(r, posix.normalize(path)))) throw refuse(role, path, "is inside banger's state directory");
      const file = await files.pin(path);
      if (!file) {
        throw new BangerError("INVALID_ARTIFACT", `${ROLE_FLAG[role]} ${path}: file does not exist`, {
          hint: "check the path; relative paths are resolved against your current directory",
        });
      }
      pinned.set(role, file);
      if (roots.some((r) => isUnder(r, file.realPath))) throw refuse(role, path, `resolves to ${file.realPath}, inside banger's state directory`);
    }
    return pinned;
  } catch (e) {
    await Promise.all([...pinned.values()].map((f) => f.close()));
    throw e;
  }
}
