import { artifactOf, type Image } from "../domain/types.js";
import type { InjectedFile } from "../ports/disks.js";
import type { AppDeps } from "./deps.js";

type DiskDeps = Pick<AppDeps, "disks" | "files" | "keys">;

/**
 * The per-VM disks of one image: a rootfs copy with a fresh host key and the
 * banger key injected (no mounts), and a /root disk grown from the work-seed
 * (or an empty ext4 when the image has none). Used by the create path when
 * the warm pool is empty and by the pool itself when it refills.
 */
export async function cloneRootfs(d: DiskDeps, image: Image, rootfs: string): Promise<void> {
  await d.disks.cloneRootfs(artifactOf(image, "rootfs")!.path, rootfs);
}

export async function makeWorkDisk(d: DiskDeps, image: Image, work: string, gib: number): Promise<string> {
  const seed = artifactOf(image, "work_seed");
  await d.disks.makeWorkDisk(work, gib, seed?.path);
  return seed ? `${gib} GiB from work-seed` : `${gib} GiB empty (image has no work-seed)`;
}

/** Returns the guest's public host key, for the VM's known_hosts. */
export async function injectIdentity(d: DiskDeps, rootfs: string, extra: InjectedFile[] = [], callerKey?: string): Promise<string> {
  const [keys, host] = await Promise.all([authorizedKeys(d, callerKey), d.keys.hostKey()]);
  await d.disks.inject(rootfs, [
    { path: "/etc/ssh/ssh_host_ed25519_key", content: host.privateKey, mode: 0o600 },
    { path: "/etc/ssh/ssh_host_ed25519_key.pub", content: host.publicKey, mode: 0o644 },
    keys,
    ...extra,
  ]);
  return host.publicKey;
}

/** The guest's root authorized_keys: banger's own key, plus the creating user's when one was sent. */
export async function authorizedKeys(d: DiskDeps, callerKey?: string): Promise<InjectedFile> {
  const bangerPub = await d.files.readText(`${await d.keys.sshKey()}.pub`);
  const content = callerKey ? `${bangerPub.trimEnd()}\n${callerKey.trim()}\n` : bangerPub;
  return { path: "/etc/ssh/banger/authorized_keys", content, mode: 0o644 };
}
