import { BangerError } from "../../domain/errors.js";
import type { Network, NetworkStatus } from "../../ports/network.js";
import type { Runner } from "../../ports/runner.js";
import { gatewayCidr, gatewayOf, inSubnet, isIpv4, prefixLen } from "../../domain/addr.js";
import { HostCmd, type TapOwner } from "./ip.js";
import { assertIfname, NAT_SET, NFT_FAMILY, NFT_TABLE, parseSetElements, PEER_SET, renderPeers, renderRuleset } from "./nft.js";
import { isBangerTap, isPoolName, TapPool, type PoolLog, type TapClaim } from "./tap-pool.js";

export interface NetLog extends PoolLog {
  info(obj: object, msg?: string): void;
}

export interface LinuxNetworkOptions {
  runner: Runner;
  bridge: string;
  /** IPv4 CIDR of the bridge; the first host address is the gateway. */
  subnet: string;
  /** Interface NAT masquerades towards; unset means the default route's device. */
  uplink?: string;
  poolSize: number;
  /** Ranges NAT guests may reach although they are private or link-local (config `nat.allow`, validated CIDRs). */
  natAllow: readonly string[];
  /** Name servers NAT guests are given; they may reach these on port 53 even in a denied range. Read at each ruleset apply. */
  nameservers?: () => string[];
  /** The unprivileged VMM user that must be able to open the TAPs (vmm_user); undefined = root. */
  tapOwner?: TapOwner;
  log: NetLog;
}

const NFT_TIMEOUT_MS = 15_000;

/**
 * Host networking with iproute2 and nftables. It works in whatever network
 * namespace bangerd runs in and never names one; tests start it under
 * `ip netns exec`, and only banger's own bridge, TAPs and nft table are touched.
 */
export class LinuxNetwork implements Network {
  private readonly cmd: HostCmd;
  private readonly pool: TapPool;
  private uplink: string | undefined;
  private hostReady = false;
  /** Peer updates run one after another, in call order, so the last call's view is what stays. */
  private peersQueue: Promise<void> = Promise.resolve();

  constructor(private readonly opts: LinuxNetworkOptions) {
    assertIfname(opts.bridge, "bridge");
    if (opts.uplink !== undefined) assertIfname(opts.uplink, "uplink");
    prefixLen(opts.subnet); // throws INVALID_CONFIG early for a bad subnet
    this.cmd = new HostCmd(opts.runner);
    this.pool = new TapPool(
      Math.max(0, opts.poolSize),
      {
        create: (n) => this.cmd.createTap(n, opts.bridge, opts.tapOwner),
        delete: (n) => this.cmd.deleteLink(n),
        reset: (n) => this.cmd.resetTap(n, opts.bridge, opts.tapOwner),
      },
      opts.log,
    );
  }

  async ensureHost(): Promise<void> {
    await this.ensureBridge();
    this.uplink = await this.resolveUplink();
    await this.applyRuleset();
    this.hostReady = true;
    this.pool.discovered(await this.listTaps());
  }

  /**
   * Call once at daemon start with the TAPs that running VMs in the store
   * hold. Those stay busy; other tap-pool-* devices become idle capacity (the
   * excess is deleted); any other bt-* device belongs to no VM and is deleted.
   */
  async adopt(inUse: TapClaim[]): Promise<void> {
    const present = await this.listTaps();
    await this.pool.adopt(inUse, present);
    const keep = new Set(inUse.map((c) => c.tap));
    for (const name of present) {
      if (isPoolName(name) || keep.has(name) || this.pool.isBusy(name) || this.pool.isReserved(name)) continue;
      await this.cmd.deleteLink(name);
      this.opts.log.info({ tap: name }, "deleted TAP device that no VM holds");
    }
  }

  poolStats(): { idle: number; size: number; misses: number } {
    return this.pool.stats();
  }

  acquireTap(vmId: string): Promise<string> {
    return this.pool.acquire(vmId);
  }

  async releaseTap(tap: string, vmId: string): Promise<void> {
    // Only ever delete devices banger names; a stray name from a corrupt record must not take down a host NIC.
    if (!isBangerTap(tap)) {
      throw new BangerError("NETWORK_FAILED", `refusing to release ${JSON.stringify(tap)}: not a banger TAP device`);
    }
    await this.pool.release(tap, vmId);
  }

  async enableNat(guestIp: string): Promise<void> {
    this.assertGuestIp(guestIp);
    if (!this.hostReady) await this.ensureHost();
    if (this.uplink === undefined) {
      // A default route may have appeared since ensureHost (e.g. DHCP came up late).
      this.uplink = await this.resolveUplink();
      if (this.uplink === undefined) {
        throw new BangerError("NETWORK_FAILED", "NAT needs an uplink, and there is no default route to take it from", {
          hint: "set `uplink` in the config to the interface that reaches the internet (e.g. eth0), or create the VM without NAT",
        });
      }
      await this.applyRuleset();
    }
    await this.cmd.run("sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
    await this.nft(["add", "element", NFT_FAMILY, NFT_TABLE, NAT_SET, `{ ${guestIp} }`]);
    this.opts.log.info({ ip: guestIp, uplink: this.uplink }, "NAT enabled");
  }

  async disableNat(guestIp: string): Promise<void> {
    if (!isIpv4(guestIp)) throw new BangerError("BAD_REQUEST", `not an IPv4 address: ${JSON.stringify(guestIp)}`);
    const res = await this.nft(["delete", "element", NFT_FAMILY, NFT_TABLE, NAT_SET, `{ ${guestIp} }`], true);
    // Deleting a missing element (or from a missing table) fails; absent is the goal, so check that instead.
    if (res.code !== 0 && (await this.natAddresses()).includes(guestIp)) {
      throw new BangerError("NETWORK_FAILED", `cannot remove ${guestIp} from the NAT set: ${res.stderr.trim()}`);
    }
  }

  setPeers(pairs: ReadonlyArray<readonly [string, string]>): Promise<void> {
    const script = renderPeers(pairs); // validated now, so a bad name fails the caller and not the queue
    const run = this.peersQueue.then(() => this.applyPeers(script, pairs));
    this.peersQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * The bridge set first, then the port flags: a peered TAP drops isolation
   * (isolated ports never talk to each other) and the set keeps it to its
   * peers; every other banger TAP on the bridge is isolated again.
   */
  private async applyPeers(script: string, pairs: ReadonlyArray<readonly [string, string]>): Promise<void> {
    if (!this.hostReady) await this.ensureHost();
    await this.cmd.run("nft", ["-f", "-"], { input: script, timeoutMs: NFT_TIMEOUT_MS });
    const peered = new Set(pairs.flat());
    for (const l of await this.cmd.detailedLinks()) {
      if (!isBangerTap(l.ifname) || l.master !== this.opts.bridge) continue;
      const want = !peered.has(l.ifname);
      if (l.linkinfo?.info_slave_data?.isolated !== want) await this.cmd.setIsolated(l.ifname, want);
    }
    this.opts.log.info({ pairs: pairs.map((p) => p.join("<->")) }, "guest peers applied");
  }

  async status(): Promise<NetworkStatus> {
    const { bridge } = this.opts;
    const link = await this.cmd.link(bridge);
    let address: string | undefined;
    if (link) {
      const a = (await this.cmd.ipv4Addrs(bridge)).find((x) => x.local === gatewayOf(this.opts.subnet));
      address = a ? `${a.local}/${a.prefixlen}` : undefined;
    }
    const fwd = await this.cmd.run("sysctl", ["-n", "net.ipv4.ip_forward"], { allowFailure: true });
    const table = await this.nft(["list", "table", NFT_FAMILY, NFT_TABLE], true);
    const bridgeTable = await this.nft(["list", "table", "bridge", NFT_TABLE], true);
    const taps = await this.listTaps();
    const details = link ? await this.cmd.detailedLinks() : [];
    return {
      bridge: { name: bridge, exists: !!link, up: !!link?.flags.includes("UP"), ...(address ? { address } : {}) },
      ipForward: fwd.stdout.trim() === "1",
      natTable: table.code === 0,
      ...((this.uplink ?? this.opts.uplink) ? { uplink: this.uplink ?? this.opts.uplink } : {}),
      natAddresses: table.code === 0 ? await this.natAddresses() : [],
      taps,
      poolIdle: this.pool.idleNames(),
      isolation: {
        inputDrop: table.code === 0 && table.stdout.includes(`iifname "${bridge}" drop`),
        bridgeFilter: bridgeTable.code === 0,
        unisolatedTaps: details
          .filter((l) => isBangerTap(l.ifname) && l.master === bridge && l.linkinfo?.info_slave_data?.isolated !== true)
          .map((l) => l.ifname),
        peers: bridgeTable.code === 0 ? await this.peerElements() : [],
      },
    };
  }

  async listTaps(): Promise<string[]> {
    return (await this.cmd.links())
      .map((l) => l.ifname)
      .filter(isBangerTap)
      .sort();
  }

  /** Remove everything banger created here: the nft table, all its TAPs, the bridge. For tests and uninstall. */
  async cleanupHost(): Promise<void> {
    await this.pool.close();
    await this.nft(["delete", "table", NFT_FAMILY, NFT_TABLE], true);
    await this.nft(["delete", "table", "bridge", NFT_TABLE], true);
    for (const name of await this.listTaps()) await this.cmd.deleteLink(name);
    await this.cmd.deleteLink(this.opts.bridge);
    this.pool.clear();
    this.hostReady = false;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /** Resolves when background refills are done; lets tests observe a full pool without sleeping. */
  settled(): Promise<void> {
    return this.pool.settled();
  }

  private async ensureBridge(): Promise<void> {
    const { bridge, subnet } = this.opts;
    const link = await this.cmd.link(bridge);
    if (!link) {
      await this.cmd.run("ip", ["link", "add", "name", bridge, "type", "bridge"]);
      this.opts.log.info({ bridge }, "created bridge");
    } else if (link.linkinfo?.info_kind !== "bridge") {
      throw new BangerError("NETWORK_FAILED", `${bridge} exists but is a ${link.linkinfo?.info_kind ?? "plain"} device, not a bridge`, {
        hint: "set `bridge` to a name that is free or already a bridge",
      });
    }
    const want = gatewayOf(subnet);
    const addrs = await this.cmd.ipv4Addrs(bridge);
    if (!addrs.some((a) => a.local === want && a.prefixlen === prefixLen(subnet))) {
      await this.cmd.run("ip", ["addr", "replace", gatewayCidr(subnet), "dev", bridge]);
    }
    await this.cmd.run("ip", ["link", "set", "dev", bridge, "up"]);
  }

  private async resolveUplink(): Promise<string | undefined> {
    if (this.opts.uplink !== undefined) return this.opts.uplink;
    const dev = await this.cmd.defaultRouteDev();
    if (dev === undefined || dev === this.opts.bridge) return undefined;
    return assertIfname(dev, "uplink");
  }

  private async applyRuleset(): Promise<void> {
    const script = renderRuleset({ bridge: this.opts.bridge, uplink: this.uplink, natAllow: this.opts.natAllow, nameservers: this.opts.nameservers?.() ?? [] });
    await this.cmd.run("nft", ["-f", "-"], { input: script, timeoutMs: NFT_TIMEOUT_MS });
  }

  private async natAddresses(): Promise<string[]> {
    const res = await this.nft(["-j", "list", "set", NFT_FAMILY, NFT_TABLE, NAT_SET], true);
    return res.code === 0 ? parseSetElements(res.stdout) : [];
  }

  private async peerElements(): Promise<string[]> {
    const res = await this.nft(["-j", "list", "set", "bridge", NFT_TABLE, PEER_SET], true);
    return res.code === 0 ? parseSetElements(res.stdout, PEER_SET) : [];
  }

  private nft(args: string[], allowFailure = false) {
    return this.cmd.run("nft", args, { timeoutMs: NFT_TIMEOUT_MS, allowFailure });
  }

  private assertGuestIp(ip: string): void {
    if (!isIpv4(ip) || !inSubnet(ip, this.opts.subnet) || ip === gatewayOf(this.opts.subnet)) {
      throw new BangerError("BAD_REQUEST", `${JSON.stringify(ip)} is not a guest address in ${this.opts.subnet}`);
    }
  }
}
