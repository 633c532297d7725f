import { BangerError } from "./errors.js";

/** One known_hosts line for a guest; non-22 ports use the [host]:port form. The key comment is dropped. */
export function knownHostsLine(host: string, publicKey: string, port = 22): string {
  const [type, data] = publicKey.trim().split(/\s+/);
  if (!type || !data) {
    throw new BangerError("SSH_KEY", `not an OpenSSH public key: ${publicKey.slice(0, 40)}`, { hint: "this is a bug in host key generation; report it" });
  }
  const name = port === 22 ? host : `[${host}]:${port}`;
  return `${name} ${type} ${data}`;
}
