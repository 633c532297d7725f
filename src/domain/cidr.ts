import { BangerError } from "./errors.js";
import { intToIp, ipToInt, isIpv4 } from "./addr.js";

/**
 * IPv4 ranges for the NAT policy. A range is written in its canonical form
 * (network address, no host bits): `10.1.2.5/24` is refused rather than
 * silently widened, because an allow-list entry that opens more than the
 * user read is the failure that matters here.
 */

/** What a guest with NAT may not reach unless `nat.allow` opens it: link-local (cloud metadata), private, shared and special ranges. */
export const NAT_DENY_V4: readonly string[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.0.0.0/24",
  "192.168.0.0/16",
  "198.18.0.0/15",
  "224.0.0.0/4",
  "240.0.0.0/4",
];

/** Why `text` is not a canonical IPv4 CIDR, or undefined when it is one. */
export function cidrProblem(text: string): string | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIpv4(m[1]!)) return `${JSON.stringify(text)} is not an IPv4 CIDR like 10.1.2.0/24`;
  const prefix = Number(m[2]);
  if (prefix > 32) return `${JSON.stringify(text)} has a prefix length above 32`;
  const net = networkOf(ipToInt(m[1]!), prefix);
  if (intToIp(net) !== m[1]) return `${JSON.stringify(text)} has host bits set; the range it names is ${intToIp(net)}/${prefix}`;
  return undefined;
}

export function parseCidrList(list: readonly string[], key: string): string[] {
  const out: string[] = [];
  for (const c of list) {
    const problem = cidrProblem(c);
    if (problem) throw new BangerError("INVALID_CONFIG", `${key}: ${problem}`, { hint: `write each entry of ${key} as network/prefix, e.g. "10.1.2.0/24"` });
    if (!out.includes(c)) out.push(c);
  }
  return out;
}

function networkOf(ip: number, prefix: number): number {
  if (prefix === 0) return 0;
  const size = 2 ** (32 - prefix);
  return Math.floor(ip / size) * size;
}
