import { BangerError } from "../../domain/errors.js";
import { isIpv4 } from "../../domain/addr.js";
import { NAT_DENY_V4, parseCidrList } from "../../domain/cidr.js";
import { isBangerTap, ON_DEMAND_PREFIX, POOL_PREFIX } from "./tap-pool.js";

/**
 * The nftables side of banger: two tables nobody else writes.
 *
 * `inet banger` filters what guests send through the host (layer 3): input
 * from the bridge is dropped unless it answers something the host started,
 * forwarding needs NAT membership and a destination outside the deny list,
 * and nothing new is forwarded towards the guests. Per-VM NAT is membership
 * in the set `nat_guests`, so turning it on or off is one element change.
 *
 * `bridge banger` filters frames between bridge ports (layer 2): a banger TAP
 * may only exchange frames with a port it is paired with in `peers`.
 *
 * Both are base chains at priority filter - 10. A drop in any base chain is
 * final whatever other tables accept, so the drops hold on a host with its own
 * firewall; only banger's accepts can be overruled by someone else's drop.
 */

export const NFT_TABLE = "banger";
export const NFT_FAMILY = "inet";
export const NAT_SET = "nat_guests";
export const PEER_SET = "peers";
/** The legacy single-family table of earlier versions; removed when the ruleset is applied. */
export const LEGACY_TABLE = "ip banger";
/**
 * Set on frames the bridge table accepted between peers. With br_netfilter
 * loaded, bridged IP traffic also crosses the inet forward hook (in and out
 * both the bridge); the mark tells it from a guest routing through the
 * gateway to another guest, which is refused.
 */
export const PEER_MARK = 0x00420000;
const MARK_HEX = `0x${PEER_MARK.toString(16).padStart(8, "0")}`;

export interface RulesetOptions {
  bridge: string;
  /** Without an uplink the tables still isolate guests; they just masquerade nothing. */
  uplink?: string;
  /** Ranges NAT guests may reach even though NAT_DENY_V4 covers them (config `nat.allow`). */
  natAllow: readonly string[];
  /**
   * The host's name servers, which NAT guests are given (resolv.ts). On a LAN
   * these are often private addresses; guests may reach them on port 53 only.
   */
  nameservers?: readonly string[];
}

// nft quotes interface names itself only when we do; anything outside this
// alphabet could break out of the quoted string in the script we feed it.
const IFNAME = /^[a-zA-Z0-9_.-]{1,15}$/;

export function assertIfname(name: string, key: string): string {
  if (!IFNAME.test(name)) {
    throw new BangerError("NETWORK_FAILED", `${key} interface name ${JSON.stringify(name)} is not usable`, {
      hint: `set \`${key}\` to an interface name of at most 15 letters, digits, '.', '_' or '-'`,
    });
  }
  return name;
}

/**
 * A script for `nft -f -` that (re)builds banger's chains in one transaction.
 * `add` of tables, sets and chains is a no-op when they exist, so `nat_guests`
 * and `peers` keep their elements (running VMs keep NAT and peers); chains and
 * the policy sets are flushed and written again, which picks up a changed
 * uplink or allow-list.
 */
export function renderRuleset(opts: RulesetOptions): string {
  const br = `"${assertIfname(opts.bridge, "bridge")}"`;
  const up = opts.uplink === undefined ? undefined : `"${assertIfname(opts.uplink, "uplink")}"`;
  const allow = parseCidrList(opts.natAllow, "nat.allow");
  const dns = [...new Set(opts.nameservers ?? [])].filter(isIpv4);
  const t = `${NFT_FAMILY} ${NFT_TABLE}`;
  const b = `bridge ${NFT_TABLE}`;
  const lines = [
    // `add` then `delete` removes the old table whether or not it exists, in the same transaction.
    `add table ${LEGACY_TABLE}`,
    `delete table ${LEGACY_TABLE}`,
    `add table ${t}`,
    `add set ${t} ${NAT_SET} { type ipv4_addr; }`,
    `add set ${t} nat_deny { type ipv4_addr; flags interval; }`,
    `add set ${t} nat_allow { type ipv4_addr; flags interval; }`,
    `add set ${t} nat_dns { type ipv4_addr; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add chain ${t} forward { type filter hook forward priority filter - 10; policy accept; }`,
    `add chain ${t} input { type filter hook input priority filter - 10; policy accept; }`,
    `flush chain ${t} postrouting`,
    `flush chain ${t} forward`,
    `flush chain ${t} input`,
    `flush set ${t} nat_deny`,
    `flush set ${t} nat_allow`,
    `flush set ${t} nat_dns`,
    `add element ${t} nat_deny { ${NAT_DENY_V4.join(", ")} }`,
  ];
  if (allow.length > 0) lines.push(`add element ${t} nat_allow { ${allow.join(", ")} }`);
  if (dns.length > 0) lines.push(`add element ${t} nat_dns { ${dns.join(", ")} }`);

  // Guest → host: only answers to what the host opened (SSH, readiness checks). IPv6 included: the bridge has a link-local address.
  lines.push(`add rule ${t} input iifname ${br} ct state established,related accept`, `add rule ${t} input iifname ${br} drop`);

  // Guest → guest through the gateway (routed, or bridged under br_netfilter): only peers' frames, marked by the bridge table.
  lines.push(
    `add rule ${t} forward iifname ${br} oifname ${br} meta mark & ${MARK_HEX} == ${MARK_HEX} accept`,
    `add rule ${t} forward iifname ${br} oifname ${br} drop`,
  );
  // Towards the guests: replies only. Inbound from the uplink is dropped whatever the host's forward policy.
  lines.push(`add rule ${t} forward oifname ${br} ct state established,related accept`, `add rule ${t} forward oifname ${br} drop`);
  // From the guests: NAT members to the uplink, minus the deny list unless allowed.
  lines.push(`add rule ${t} forward iifname ${br} ct state established,related accept`);
  if (up) {
    lines.push(
      `add rule ${t} forward iifname ${br} ip saddr @${NAT_SET} oifname ${up} ip daddr @nat_allow accept`,
      `add rule ${t} forward iifname ${br} ip saddr @${NAT_SET} oifname ${up} ip daddr @nat_dns meta l4proto { tcp, udp } th dport 53 accept`,
      `add rule ${t} forward iifname ${br} ip daddr @nat_deny drop`,
      `add rule ${t} forward iifname ${br} ip saddr @${NAT_SET} oifname ${up} accept`,
      `add rule ${t} postrouting ip saddr @${NAT_SET} oifname ${up} masquerade`,
    );
  }
  lines.push(`add rule ${t} forward iifname ${br} drop`);

  // Guest ↔ guest on the bridge: frames to or from a banger TAP pass only between peers.
  lines.push(
    `add table ${b}`,
    `add set ${b} ${PEER_SET} { type ifname . ifname; }`,
    `add chain ${b} forward { type filter hook forward priority filter - 10; policy accept; }`,
    `flush chain ${b} forward`,
    `add rule ${b} forward iifname . oifname @${PEER_SET} meta mark set meta mark | ${MARK_HEX} accept`,
  );
  for (const prefix of [POOL_PREFIX, ON_DEMAND_PREFIX]) {
    lines.push(`add rule ${b} forward iifname "${prefix}*" drop`, `add rule ${b} forward oifname "${prefix}*" drop`);
  }
  return lines.join("\n") + "\n";
}

/** Replace the whole peer set: both directions of every pair, in one transaction. */
export function renderPeers(pairs: ReadonlyArray<readonly [string, string]>): string {
  const b = `bridge ${NFT_TABLE}`;
  const elems: string[] = [];
  for (const [x, y] of pairs) {
    for (const n of [x, y]) {
      if (!isBangerTap(n) || !IFNAME.test(n)) throw new BangerError("INTERNAL", `peer ${JSON.stringify(n)} is not a banger TAP device`);
    }
    elems.push(`"${x}" . "${y}"`, `"${y}" . "${x}"`);
  }
  const lines = [`add table ${b}`, `add set ${b} ${PEER_SET} { type ifname . ifname; }`, `flush set ${b} ${PEER_SET}`];
  if (elems.length > 0) lines.push(`add element ${b} ${PEER_SET} { ${[...new Set(elems)].join(", ")} }`);
  return lines.join("\n") + "\n";
}

/** Elements of a set from `nft -j list set …`: addresses, or `a . b` for concatenations. */
export function parseSetElements(json: string, setName = NAT_SET): string[] {
  const doc = JSON.parse(json) as { nftables?: Array<{ set?: { name?: string; elem?: unknown[] } }> };
  const set = (doc.nftables ?? []).find((o) => o.set?.name === setName)?.set;
  const out: string[] = [];
  for (const e of set?.elem ?? []) {
    const v = e && typeof e === "object" && "elem" in e ? (e as { elem: { val?: unknown } }).elem.val : e;
    // Plain sets list bare strings; sets with timeouts or counters wrap them; concatenations list their parts.
    if (typeof v === "string") out.push(v);
    else if (v && typeof v === "object" && "concat" in v && Array.isArray((v as { concat: unknown[] }).concat)) {
      out.push((v as { concat: unknown[] }).concat.map(String).join(" . "));
    }
  }
  return out.sort();
}
