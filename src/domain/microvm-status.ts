import type { MicroVmCondition, MicroVmStatus } from "./microvm.js";

/**
 * What the controller writes into a MicroVM's status from what it observes of its placement
 * (docs/scale-out.md). Pure: the same observation on the same status gives the same answer, so
 * replayed or reordered events write nothing new.
 */
export type PlacementObservation =
  | { kind: "pending"; reason: string; message: string }
  | { kind: "bound"; node: string }
  | { kind: "conflict"; message: string }
  | { kind: "nodeLost"; node: string; reason: "NodeDeleted" | "NodeNotReady"; message: string };

/** Phases the node agent owns once a VM is placed; the controller does not step back over them. */
const NODE_PHASES = new Set(["Pulling", "Creating", "Running", "Failed", "Deleting"]);

type CondInput = Omit<MicroVmCondition, "lastTransitionTime">;

/** Sets one condition by type; its lastTransitionTime moves only when its status does. */
export function withCondition(conds: MicroVmCondition[] | undefined, c: CondInput, now: string): MicroVmCondition[] {
  const list = conds ?? [];
  const old = list.find((x) => x.type === c.type);
  const next: MicroVmCondition = { ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : now };
  return old ? list.map((x) => (x.type === c.type ? next : x)) : [...list, next];
}

function same(a: MicroVmStatus, b: MicroVmStatus): boolean {
  const norm = (s: MicroVmStatus) =>
    JSON.stringify(
      Object.entries(s)
        .filter(([, v]) => v !== undefined)
        .sort(([x], [y]) => x.localeCompare(y)),
    );
  return norm(a) === norm(b);
}

/** The status to write for `obs`, or undefined when `current` already says it. */
export function placementStatus(current: MicroVmStatus, obs: PlacementObservation, now: string): MicroVmStatus | undefined {
  let next: MicroVmStatus;
  switch (obs.kind) {
    case "pending": {
      const conditions = withCondition(current.conditions, { type: "Scheduled", status: "False", reason: obs.reason, message: obs.message }, now);
      // A MicroVM whose node was lost stays NodeLost, on that node, until it is bound again: Pending would hide why it is not running.
      const lost = (current.conditions ?? []).some((c) => c.type === "NodeLost" && c.status === "True");
      const phase = current.phase === "Deleting" ? current.phase : lost ? "NodeLost" : "Pending";
      next = { ...current, phase, node: lost ? current.node : undefined, ip: undefined, conditions };
      break;
    }
    case "conflict": {
      const conditions = withCondition(current.conditions, { type: "Scheduled", status: "False", reason: "PlaceholderConflict", message: obs.message }, now);
      next = { ...current, phase: "Pending", node: undefined, ip: undefined, lastError: obs.message, conditions };
      break;
    }
    case "bound": {
      const moved = current.node !== obs.node;
      let conditions = withCondition(current.conditions, { type: "Scheduled", status: "True", reason: "Scheduled", message: `bound to node ${obs.node}` }, now);
      if (conditions.some((c) => c.type === "NodeLost"))
        conditions = withCondition(conditions, { type: "NodeLost", status: "False", reason: "Replaced", message: `placed again on node ${obs.node}` }, now);
      const phase = moved || !current.phase || !NODE_PHASES.has(current.phase) ? "Placed" : current.phase;
      next = { ...current, phase, node: obs.node, conditions, ...(moved ? { ip: undefined, vmName: undefined, stages: undefined } : {}) };
      break;
    }
    case "nodeLost": {
      const conditions = withCondition(current.conditions, { type: "NodeLost", status: "True", reason: obs.reason, message: obs.message }, now);
      next = { ...current, phase: "NodeLost", node: obs.node, conditions, lastError: obs.message };
      break;
    }
  }
  return same(current, next) ? undefined : next;
}
