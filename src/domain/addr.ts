import { BangerError } from "./errors.js";

/**
 * Pure IPv4 helpers for the guest subnet. Everything works on 32-bit
 * unsigned integers so that arithmetic over octet boundaries is exact.
 */

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isIpv4(ip: string): boolean {
  const m = IPV4.exec(ip);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255 && String(Number(o)) === o);
}

export function ipToInt(ip: string): number {
  if (!isIpv4(ip)) throw new BangerError("BAD_REQUEST", `not an IPv4 address: ${JSON.stringify(ip)}`);
  return ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

interface Cidr {
  network: number;
  prefix: number;
  broadcast: number;
}

function parseCidr(subnet: string): Cidr {
  const [addr, len, ...rest] = subnet.split("/");
  const prefix = Number(len);
  if (rest.length > 0 || addr === undefined || !isIpv4(addr) || !/^\d{1,2}$/.test(len ?? "") || prefix > 30) {
    throw new BangerError("INVALID_CONFIG", `not a usable IPv4 CIDR: ${JSON.stringify(subnet)}`, {
      hint: "set `subnet` to a CIDR with room for a gateway and guests, e.g. 172.30.0.0/24",
    });
  }
  const size = 2 ** (32 - prefix);
  // Host bits in the given address are ignored: 172.30.0.7/24 means 172.30.0.0/24.
  const network = Math.floor(ipToInt(addr) / size) * size;
  return { network, prefix, broadcast: network + size - 1 };
}

export function prefixLen(subnet: string): number {
  return parseCidr(subnet).prefix;
}

export function netmaskOf(subnet: string): string {
  const { prefix } = parseCidr(subnet);
  return intToIp(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

/** The first host address; the bridge carries it and guests route through it. */
export function gatewayOf(subnet: string): string {
  return intToIp(parseCidr(subnet).network + 1);
}

/** `<gateway>/<prefix>`, the form `ip addr` takes. */
export function gatewayCidr(subnet: string): string {
  return `${gatewayOf(subnet)}/${prefixLen(subnet)}`;
}

/** Assignable guest addresses in order: not the network, the gateway or the broadcast address. */
export function* guestAddresses(subnet: string): Generator<string> {
  const { network, broadcast } = parseCidr(subnet);
  for (let n = network + 2; n < broadcast; n++) yield intToIp(n);
}

export function inSubnet(ip: string, subnet: string): boolean {
  if (!isIpv4(ip)) return false;
  const { network, broadcast } = parseCidr(subnet);
  const n = ipToInt(ip);
  return n >= network && n <= broadcast;
}

/**
 * A locally administered unicast MAC derived from the guest IP, so a VM keeps
 * its MAC across restarts and the bridge never sees two guests share one.
 */
export function macForIp(ip: string): string {
  if (!isIpv4(ip)) throw new BangerError("BAD_REQUEST", `not an IPv4 address: ${JSON.stringify(ip)}`);
  const octets = ip.split(".").map(Number);
  return ["02", "fc", ...octets.map((o) => o.toString(16).padStart(2, "0"))].join(":");
}

/** Kernel `ip=` argument; guests apply it in userspace (see the feasibility report). */
export function bootNetArg(ip: string, gw: string, mask: string, hostname: string, dns: string[] = []): string {
  for (const [what, v] of [
    ["ip", ip],
    ["gateway", gw],
    ["netmask", mask],
  ] as const) {
    if (!isIpv4(v)) throw new BangerError("BAD_REQUEST", `boot ${what} is not an IPv4 address: ${JSON.stringify(v)}`);
  }
  // ':' separates the fields and whitespace would split the kernel command line.
  if (!/^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$/.test(hostname)) {
    throw new BangerError("INVALID_NAME", `hostname ${JSON.stringify(hostname)} cannot go into the kernel ip= argument`, {
      hint: "use letters, digits and '-' (at most 63 characters)",
    });
  }
  const servers = dns.filter(isIpv4).slice(0, 2);
  return `ip=${ip}::${gw}:${mask}:${hostname}:eth0:off${servers.map((s) => `:${s}`).join("")}`;
}
