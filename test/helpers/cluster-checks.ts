// Small checks shared by the cluster e2e test and bench/cluster.ts.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { ClusterWorld, WorldNode } from "./cluster-world.js";

/** MicroVMs per node, from their status. */
export function placement(mvs: { status?: { node?: string } }[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const mv of mvs) if (mv.status?.node) out[mv.status.node] = (out[mv.status.node] ?? 0) + 1;
  return out;
}

/** Polls until every named MicroVM satisfies `ok`; the deadline only bounds a hung run and names the stragglers. */
export async function waitAll(w: ClusterWorld, names: string[], ok: (mv: any) => boolean, ms: number): Promise<any[]> {
  const end = Date.now() + ms;
  for (;;) {
    const all = await Promise.all(names.map((n) => w.get(n)));
    if (all.every((mv) => mv && ok(mv))) return all;
    if (Date.now() > end) {
      const late = all.map(
        (mv, i) => `${names[i]}=${mv?.status?.phase ?? "gone"}@${mv?.status?.node ?? "-"}${mv?.status?.lastError ? ` (${mv.status.lastError})` : ""}`,
      );
      throw new Error(`timed out waiting for ${names.length} MicroVMs: ${late.join(", ")}`);
    }
    await sleep(500);
  }
}

/** `hostname` and `/etc/machine-id` of a guest, over SSH through its node's bangerd. */
export async function guestIdentity(node: WorldNode, vmName: string): Promise<{ hostname: string; machineId: string }> {
  const r = await node.d.cli(["vm", "ssh", vmName, "--", "hostname; cat /etc/machine-id"], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`ssh to ${vmName} on ${node.name} failed (${r.code}): ${r.stderr}`);
  const [hostname, machineId] = r.stdout.trim().split("\n");
  return { hostname: hostname ?? "", machineId: machineId ?? "" };
}

export const sha256Of = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
