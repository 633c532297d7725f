import { BangerError } from "../../domain/errors.js";

/**
 * The nftables side of banger: one table `ip banger` that nobody else writes.
 * Per-VM NAT is membership in the set `nat_guests`, so turning NAT on or off
 * for a VM is one set-element change and the rules never churn.
 */

export const NFT_TABLE = "banger";
export const NAT_SET = "nat_guests";

export interface RulesetOptions {
  bridge: string;
  /** Without an uplink the table still isolates guests; it just masquerades nothing. */
  uplink?: string;
  blockedHostPorts: number[];
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

function assertPorts(ports: number[]): number[] {
  for (const p of ports) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) {
      throw new BangerError("NETWORK_FAILED", `blocked host port ${p} is not a TCP port`);
    }
  }
  return [...new Set(ports)].sort((a, b) => a - b);
}

/**
 * A script for `nft -f -` that (re)builds banger's chains in one transaction.
 * `add` of the table, set and chains is a no-op when they exist, so the set
 * keeps its elements (running VMs keep NAT); the chains are flushed and their
 * rules written again, which picks up a changed uplink or port list.
 */
export function renderRuleset(opts: RulesetOptions): string {
  const br = `"${assertIfname(opts.bridge, "bridge")}"`;
  const up = opts.uplink === undefined ? undefined : `"${assertIfname(opts.uplink, "uplink")}"`;
  const ports = assertPorts(opts.blockedHostPorts);
  const t = `ip ${NFT_TABLE}`;
  const lines = [
    `add table ${t}`,
    `add set ${t} ${NAT_SET} { type ipv4_addr; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
    `add chain ${t} input { type filter hook input priority filter; policy accept; }`,
    `flush chain ${t} postrouting`,
    `flush chain ${t} forward`,
    `flush chain ${t} input`,
  ];
  if (up) lines.push(`add rule ${t} postrouting ip saddr @${NAT_SET} oifname ${up} masquerade`);
  // Replies to connections a guest was allowed to open (and to connections
  // opened towards guests) pass; anything new from a guest needs NAT.
  lines.push(`add rule ${t} forward ct state established,related accept`);
  if (up) lines.push(`add rule ${t} forward iifname ${br} ip saddr @${NAT_SET} oifname ${up} accept`);
  lines.push(`add rule ${t} forward iifname ${br} drop`);
  if (ports.length > 0) {
    lines.push(`add rule ${t} input iifname ${br} tcp dport { ${ports.join(", ")} } drop`);
  }
  return lines.join("\n") + "\n";
}

/** Elements of `nat_guests` from `nft -j list set ip banger nat_guests`. */
export function parseSetElements(json: string): string[] {
  const doc = JSON.parse(json) as { nftables?: Array<{ set?: { name?: string; elem?: unknown[] } }> };
  const set = (doc.nftables ?? []).find((o) => o.set?.name === NAT_SET)?.set;
  const out: string[] = [];
  for (const e of set?.elem ?? []) {
    // Plain sets list bare strings; sets with timeouts or counters wrap them.
    if (typeof e === "string") out.push(e);
    else if (e && typeof e === "object" && "elem" in e) {
      const inner = (e as { elem: { val?: unknown } }).elem.val;
      if (typeof inner === "string") out.push(inner);
    }
  }
  return out.sort();
}
