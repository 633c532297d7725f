/**
 * Guest services banger protects with a per-VM password. opencode reads OPENCODE_SERVER_PASSWORD
 * and then demands HTTP Basic auth (user `opencode` unless OPENCODE_SERVER_USERNAME says otherwise)
 * on every route; without it, it serves anyone who can reach the port.
 */
export interface ServiceAuth {
  /** HTTP Basic user name. */
  username: string;
  /** Environment variable the guest's unit reads the password from. */
  envVar: string;
  /** Root-only file in the guest, written at create, read by the service's unit. */
  guestEnvFile: string;
  /** A route that answers 200 when authenticated and 401 otherwise. */
  probePath: string;
}

export const SERVICE_AUTH: Readonly<Record<string, ServiceAuth>> = {
  opencode: { username: "opencode", envVar: "OPENCODE_SERVER_PASSWORD", guestEnvFile: "/etc/banger/opencode.env", probePath: "/global/health" },
};

export const authOf = (serviceName: string): ServiceAuth | undefined => SERVICE_AUTH[serviceName];

export function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}
