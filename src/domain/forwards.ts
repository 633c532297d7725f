import { BangerError } from "./errors.js";
import { isIpv4 } from "./addr.js";

/** A host TCP port that bangerd relays to a port of one guest (`vm create -p`, `vm port add`). */
export interface PortForward {
  vmId: string;
  /** The host address bangerd listens on; 127.0.0.1 unless the user published elsewhere. */
  hostAddress: string;
  hostPort: number;
  guestPort: number;
}

export const DEFAULT_PUBLISH_ADDRESS = "127.0.0.1";

export type ForwardSpec = Omit<PortForward, "vmId">;

function port(text: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new BangerError("BAD_REQUEST", `port forward ${JSON.stringify(spec)}: ${JSON.stringify(text)} is not a TCP port (1-65535)`, {
      hint: "write it as [address:]hostport:guestport, e.g. 8080:80 or 0.0.0.0:8080:80",
    });
  }
  return Number(text);
}

export function checkAddress(addr: string, what: string): string {
  if (!isIpv4(addr)) {
    throw new BangerError("BAD_REQUEST", `${what} ${JSON.stringify(addr)} is not an IPv4 address`, {
      hint: "publish on 127.0.0.1 (the default), 0.0.0.0, or one of the host's IPv4 addresses",
    });
  }
  return addr;
}

/** `[addr:]hostport:guestport`; the address defaults to `defaultAddress`. */
export function parseForward(spec: string, defaultAddress = DEFAULT_PUBLISH_ADDRESS): ForwardSpec {
  const parts = spec.split(":");
  if (parts.length !== 2 && parts.length !== 3) {
    throw new BangerError("BAD_REQUEST", `port forward ${JSON.stringify(spec)} is not [address:]hostport:guestport`, {
      hint: "e.g. -p 8080:80 (on 127.0.0.1), or -p 0.0.0.0:8080:80 to publish on every address",
    });
  }
  const [a, h, g] = parts.length === 3 ? parts : [defaultAddress, ...parts];
  return { hostAddress: checkAddress(a!, "publish address"), hostPort: port(h!, spec), guestPort: port(g!, spec) };
}

export function formatForward(f: ForwardSpec): string {
  return `${f.hostAddress}:${f.hostPort} -> ${f.guestPort}`;
}
