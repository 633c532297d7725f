import { BangerError, isBangerError, isCode } from "../../domain/errors.js";
import type { Runner, RunOptions, RunResult } from "../../ports/runner.js";

/**
 * Thin wrappers over `ip -j` through the Runner. Every call has a timeout and
 * failures become NETWORK_FAILED, because that is what the caller (creating a
 * VM, starting the daemon) experiences, whatever tool failed underneath.
 */

export const IP_TIMEOUT_MS = 10_000;

const ROOT_HINT = "bangerd needs root (CAP_NET_ADMIN) plus iproute2 and nftables; `banger doctor` checks the host";

export interface Link {
  ifname: string;
  flags: string[];
  master?: string;
  operstate?: string;
  linkinfo?: {
    info_kind?: string;
    info_slave_kind?: string;
    info_slave_data?: { isolated?: boolean };
    info_data?: { user?: string | number };
  };
}

export interface AddrInfo {
  family: string;
  local: string;
  prefixlen: number;
}

/** The uid (and its name, as `ip -d -j` may print either) that owns banger's TAPs. */
export interface TapOwner {
  uid: number;
  name: string;
}

function ownedBy(link: Link | undefined, owner: TapOwner): boolean {
  const user = link?.linkinfo?.info_data?.user;
  return user === owner.name || user === owner.uid || user === String(owner.uid);
}

export class HostCmd {
  constructor(private readonly runner: Runner) {}

  async run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
    try {
      return await this.runner.run(cmd, args, { timeoutMs: IP_TIMEOUT_MS, ...opts });
    } catch (e) {
      if (isCode(e, "NETWORK_FAILED")) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      const hint = isBangerError(e) && e.hint ? e.hint : ROOT_HINT;
      throw new BangerError("NETWORK_FAILED", msg, { hint, cause: e });
    }
  }

  async json<T>(cmd: string, args: string[]): Promise<T> {
    const res = await this.run(cmd, args);
    const text = res.stdout.trim();
    if (text === "") return [] as unknown as T;
    try {
      return JSON.parse(text) as T;
    } catch (e) {
      throw new BangerError("NETWORK_FAILED", `${cmd} ${args.join(" ")} printed output that is not JSON`, { cause: e });
    }
  }

  links(): Promise<Link[]> {
    return this.json<Link[]>("ip", ["-j", "link", "show"]);
  }

  /** The link with its kind, or undefined when there is no such device. */
  async link(name: string): Promise<Link | undefined> {
    const res = await this.run("ip", ["-d", "-j", "link", "show", "dev", name], { allowFailure: true });
    if (res.code !== 0) {
      if (/does not exist|Cannot find device/i.test(res.stderr)) return undefined;
      throw new BangerError("NETWORK_FAILED", `ip link show dev ${name} failed: ${res.stderr.trim()}`, { hint: ROOT_HINT });
    }
    return (JSON.parse(res.stdout) as Link[])[0];
  }

  async ipv4Addrs(name: string): Promise<AddrInfo[]> {
    const rows = await this.json<Array<{ addr_info?: AddrInfo[] }>>("ip", ["-j", "-4", "addr", "show", "dev", name]);
    return rows.flatMap((r) => r.addr_info ?? []).filter((a) => a.family === "inet");
  }

  async defaultRouteDev(): Promise<string | undefined> {
    const routes = await this.json<Array<{ dev?: string }>>("ip", ["-j", "-4", "route", "show", "default"]);
    return routes.find((r) => typeof r.dev === "string")?.dev;
  }

  /** Detailed rows (`ip -d`): bridge-port flags such as isolation. */
  detailedLinks(): Promise<Link[]> {
    return this.json<Link[]>("ip", ["-d", "-j", "link", "show"]);
  }

  /**
   * Attach to the bridge as an isolated port and bring up; also repairs a
   * device someone detached. Isolation comes before `up` so a guest never has
   * a moment on the bridge without it.
   */
  async attachUp(name: string, bridge: string): Promise<void> {
    await this.run("ip", ["link", "set", "dev", name, "master", bridge]);
    await this.setIsolated(name, true);
    await this.run("ip", ["link", "set", "dev", name, "up"]);
  }

  /** An isolated bridge port forwards to no other isolated port; the bridge device (the gateway) still hears it. */
  async setIsolated(name: string, on: boolean): Promise<void> {
    await this.run("ip", ["link", "set", "dev", name, "type", "bridge_slave", "isolated", on ? "on" : "off"]);
  }

  /**
   * A TAP the unprivileged VMM can open without CAP_NET_ADMIN: owned by its uid. The owner of an
   * existing device cannot be changed, so one with another owner is replaced.
   */
  async createTap(name: string, bridge: string, owner?: TapOwner): Promise<void> {
    const args = ["tuntap", "add", "dev", name, "mode", "tap", ...(owner ? ["user", String(owner.uid)] : [])];
    let res = await this.run("ip", args, { allowFailure: true });
    if (res.code !== 0 && owner && !ownedBy(await this.link(name), owner)) {
      await this.deleteLink(name);
      res = await this.run("ip", args, { allowFailure: true });
    }
    // A device left behind by a crashed daemon makes TUNSETIFF report busy;
    // the name is ours by prefix, so reusing it is what a retry should do.
    if (res.code !== 0 && !(await this.link(name))) {
      throw new BangerError("NETWORK_FAILED", `cannot create TAP ${name}: ${res.stderr.trim()}`, {
        hint: "check that /dev/net/tun exists and bangerd runs as root",
      });
    }
    await this.attachUp(name, bridge);
  }

  /** Delete a device; a device that is already gone counts as deleted. */
  async deleteLink(name: string): Promise<void> {
    const res = await this.run("ip", ["link", "del", "dev", name], { allowFailure: true });
    if (res.code !== 0 && (await this.link(name))) {
      throw new BangerError("NETWORK_FAILED", `cannot delete ${name}: ${res.stderr.trim()}`, { hint: ROOT_HINT });
    }
  }

  /**
   * Make a returned pool TAP fit for the next VM: no addresses, and a
   * down/up cycle so the bridge forgets MACs it learned from the old guest.
   * Returns false when the device no longer exists.
   */
  async resetTap(name: string, bridge: string, owner?: TapOwner): Promise<boolean> {
    const link = await this.link(name);
    if (!link) return false;
    if (owner && !ownedBy(link, owner)) {
      // Made for another VMM user (config changed): the pool makes a new one.
      await this.deleteLink(name);
      return false;
    }
    await this.run("ip", ["addr", "flush", "dev", name]);
    await this.run("ip", ["link", "set", "dev", name, "down"]);
    await this.attachUp(name, bridge);
    return true;
  }
}
