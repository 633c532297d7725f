import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ensureDefaultKey } from "../adapters/ssh/keys.js";
import { currentEnv, defaultSshKeyPath } from "../config/paths.js";
import type { SshTarget } from "../ports/guest.js";

/**
 * A member of the API group reaches its VMs with its own key: banger makes one per user
 * (~/.local/share/banger/ssh/id_ed25519, no passphrase, used for nothing else), the create sends
 * its public half, and bangerd adds it to the guest's authorized_keys. banger's own key stays
 * root's. Root keeps using the daemon's key, as before.
 */
export const callerIsRoot = (): boolean => process.getuid?.() === 0;

export async function callerPublicKey(): Promise<string | undefined> {
  if (callerIsRoot()) return undefined;
  const key = defaultSshKeyPath(currentEnv());
  await ensureDefaultKey(key);
  return (await readFile(`${key}.pub`, "utf8")).trim();
}

/** The daemon's ssh target made usable by this user: their key, and the VM's host key in a file they own. */
export async function callerSshTarget(target: SshTarget, knownHosts: string, vmName: string): Promise<SshTarget> {
  if (callerIsRoot()) return target;
  const key = defaultSshKeyPath(currentEnv());
  const known = join(dirname(key), "known_hosts.d", vmName);
  await mkdir(dirname(known), { recursive: true, mode: 0o700 });
  await writeFile(known, knownHosts, { mode: 0o600 });
  return { ...target, keyPath: key, knownHostsPath: known };
}
