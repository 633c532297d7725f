import { readFileSync } from "node:fs";

/**
 * Name servers a NAT guest can use: the host's, minus loopback ones (a local
 * caching resolver such as systemd-resolved's 127.0.0.53 is unreachable from a guest).
 */
export function hostNameservers(file = "/etc/resolv.conf"): string[] {
  try {
    return readFileSync(file, "utf8")
      .split("\n")
      .map((l) => /^\s*nameserver\s+(\d{1,3}(?:\.\d{1,3}){3})\s*$/.exec(l)?.[1])
      .filter((ip): ip is string => Boolean(ip) && !ip!.startsWith("127."));
  } catch {
    return [];
  }
}
