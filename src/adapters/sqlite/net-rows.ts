import { BangerError } from "../../domain/errors.js";
import { formatForward, type PortForward } from "../../domain/forwards.js";
import { constraintOf, isDuplicate } from "./sqlite-errors.js";

/**
 * The tables of migration 5: port forwards and peer pairs. Kept out of
 * store.ts; SqliteStore runs these inside its own transactions.
 */

export interface Sql {
  get<T>(sql: string, ...params: unknown[]): T | undefined;
  all<T>(sql: string, ...params: unknown[]): T[];
  run(sql: string, ...params: unknown[]): { changes: number };
}

interface ForwardRow {
  vm_id: string;
  host_address: string;
  host_port: number;
  guest_port: number;
}

const toForward = (r: ForwardRow): PortForward => ({ vmId: r.vm_id, hostAddress: r.host_address, hostPort: r.host_port, guestPort: r.guest_port });

export function insertForward(q: Sql, f: PortForward, now: string): void {
  // 0.0.0.0 covers every address, so it conflicts with any forward on the same port, and the other way round.
  const clash = q.get<ForwardRow>(
    "SELECT * FROM port_forwards WHERE host_port = ? AND (host_address = ? OR host_address = '0.0.0.0' OR ? = '0.0.0.0')",
    f.hostPort,
    f.hostAddress,
    f.hostAddress,
  );
  if (clash) throw forwardTaken(f, clash);
  try {
    q.run(
      "INSERT INTO port_forwards (vm_id, host_address, host_port, guest_port, created_at) VALUES (?, ?, ?, ?, ?)",
      f.vmId,
      f.hostAddress,
      f.hostPort,
      f.guestPort,
      now,
    );
  } catch (e) {
    const c = constraintOf(e);
    if (isDuplicate(c, "port_forwards.host_address") || isDuplicate(c, "port_forwards.host_port")) throw forwardTaken(f);
    if (c?.kind === "foreignkey") throw new BangerError("VM_NOT_FOUND", `no VM with id ${f.vmId}`);
    throw e;
  }
}

function forwardTaken(f: PortForward, by?: ForwardRow): BangerError {
  const owner = by ? ` (forward ${formatForward(toForward(by))} of another VM or this one)` : "";
  return new BangerError("PORT_IN_USE", `host port ${f.hostAddress}:${f.hostPort} is already forwarded${owner}`, {
    hint: "pick another host port, or remove that forward first (`banger vm port ls <vm>`, `banger vm port rm`)",
  });
}

export function deleteForward(q: Sql, vmId: string, hostAddress: string, hostPort: number): boolean {
  return q.run("DELETE FROM port_forwards WHERE vm_id = ? AND host_address = ? AND host_port = ?", vmId, hostAddress, hostPort).changes > 0;
}

export function selectForwards(q: Sql, vmId?: string): PortForward[] {
  const rows =
    vmId === undefined
      ? q.all<ForwardRow>("SELECT * FROM port_forwards ORDER BY host_port, host_address")
      : q.all<ForwardRow>("SELECT * FROM port_forwards WHERE vm_id = ? ORDER BY host_port, host_address", vmId);
  return rows.map(toForward);
}

export function insertPeers(q: Sql, vmId: string, peerIds: readonly string[]): void {
  for (const p of peerIds) {
    if (p === vmId) continue;
    const [a, b] = vmId < p ? [vmId, p] : [p, vmId];
    q.run("INSERT OR IGNORE INTO vm_peers (a, b) VALUES (?, ?)", a, b);
  }
}

export function deletePeers(q: Sql, vmId: string): void {
  q.run("DELETE FROM vm_peers WHERE a = ? OR b = ?", vmId, vmId);
}

export function selectPeerPairs(q: Sql): Array<[string, string]> {
  return q.all<{ a: string; b: string }>("SELECT a, b FROM vm_peers ORDER BY a, b").map((r) => [r.a, r.b]);
}
