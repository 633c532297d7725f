import type { Vm } from "../domain/types.js";
import type { ClaimedMember } from "./deps.js";
import type { BootContext } from "./boot-stages.js";
import type { Plan, Stage } from "./plan.js";
import { handleOf } from "./vm-boot.js";
import { syncPeers, type NetDeps } from "./vm-net.js";

/** What the claimed member becomes: the create's own name, owner and network choices. */
export interface ClaimTarget {
  name: string;
  nat: boolean;
  owner?: { uid: number; name: string };
  external?: { id: string; spec: string };
}

/**
 * A create's first stage when it took a paused pool member (app/vm-pool.ts): the row is renamed to
 * the requested VM, and the undos of everything the member's fill acquired are registered here, in
 * the order its own plan would have run them, so a failure later in this create (a guest that will
 * not resume or re-identify) leaves nothing of the member and the create can restore afresh.
 */
export function claimStage(c: BootContext & { d: NetDeps }, plan: Pick<Plan, "undoFailures">, member: ClaimedMember, target: ClaimTarget): Stage {
  const { d, vmm } = c;
  const m = member.vm;
  return {
    name: "claim",
    run: async ({ onUndo }) => {
      onUndo("vm-record", () => {
        if (plan.undoFailures === 0) d.store.deleteVm(m.id);
      });
      onUndo("lease", () => d.store.releaseLease(m.id));
      if (m.tap) {
        const tap = m.tap;
        onUndo("tap", async () => {
          // Peers recorded by this create are unpaired before the device goes back to the pool.
          await syncPeers(d, m.id);
          await d.network.releaseTap(tap, m.id);
          c.patch({ tap: undefined });
        });
      }
      onUndo("vm-dir", () => d.files.remove(m.dir));
      onUndo("vmm", async () => {
        const h = handleOf(c.vm(), vmm);
        if (h) await vmm.kill(h);
        c.patch({ pid: undefined, pidStart: undefined });
      });
      const patch: Partial<Vm> = {
        name: target.name,
        role: undefined,
        nat: target.nat,
        ownerUid: target.owner?.uid,
        ownerName: target.owner?.name,
        bootSource: `snapshot ${member.snapshotId} (pool)`,
        externalId: target.external?.id,
        externalSpec: target.external?.spec,
      };
      c.patch(patch);
      const waited = Math.round((Date.now() - member.readyAt) / 1000);
      return `paused member ${m.name} (restored in ${member.fillMs} ms, ${waited} s ago)`;
    },
  };
}

/** Peers of a claimed member: its TAP exists already, so the pairs are applied here rather than by the TAP stage. */
export function claimedPeersStage(d: NetDeps, base: Stage): Stage {
  return {
    name: base.name,
    run: async (ctx) => {
      const detail = await base.run(ctx);
      await syncPeers(d);
      return detail ? `${detail}, applied` : undefined;
    },
  };
}
