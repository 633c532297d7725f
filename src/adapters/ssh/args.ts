import type { SshTarget } from "../../ports/guest.js";

/**
 * Arguments for the system `ssh` reaching a guest: only banger's key, only
 * the VM's own known_hosts (strict, so a wrong host key fails instead of
 * prompting), never a password prompt. `extra` follows the destination
 * (the remote command).
 */
export function sshArgs(target: SshTarget, extra: string[] = [], opts: { connectTimeoutS?: number; proxyCommand?: string } = {}): string[] {
  // Through a proxy ssh would look the host key up under the destination anyway; the alias says
  // so, since the proxy (banger-vsock) may not use that address at all.
  const proxy = opts.proxyCommand ? ["-o", `ProxyCommand=${opts.proxyCommand}`, "-o", `HostKeyAlias=${target.host}`] : [];
  return [
    ...proxy,
    "-i",
    target.keyPath,
    "-p",
    String(target.port ?? 22),
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${target.knownHostsPath}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    `ConnectTimeout=${opts.connectTimeoutS ?? 3}`,
    "-o",
    "LogLevel=ERROR",
    `${target.user}@${target.host}`,
    ...extra,
  ];
}
