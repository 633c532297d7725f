import { join } from "node:path";
import type { FirecrackerPaths } from "./schemas.js";
import { findJail, IN_JAIL } from "./jail.js";

/** Files the driver keeps in the per-VM directory (an unjailed firecracker's sockets included). */
export function firecrackerPaths(dir: string): FirecrackerPaths {
  return {
    apiSocket: join(dir, "fc.sock"),
    vsockSocket: join(dir, "vsock.sock"),
    consoleLog: join(dir, "console.log"),
    vmmLog: join(dir, "firecracker.log"),
  };
}

/**
 * The one answer to "where is this VM's API / hybrid-vsock socket, seen from the host": inside its
 * jail (`<chroot>/fc.sock`, `<chroot>/vsock.sock`) while a jail exists for it, else in the VM dir.
 * Deciding by the jail on disk, not by today's config, keeps VMs started before a config change
 * reachable (a restarted daemon rebuilds handles from the VM dir).
 */
export function firecrackerSocket(dir: string, which: "api" | "vsock", chrootBase?: string): string {
  if (chrootBase) {
    const jail = findJail(chrootBase, dir);
    if (jail) return join(jail.root, which === "api" ? IN_JAIL.apiSocket : IN_JAIL.vsockSocket);
  }
  const paths = firecrackerPaths(dir);
  return which === "api" ? paths.apiSocket : paths.vsockSocket;
}
