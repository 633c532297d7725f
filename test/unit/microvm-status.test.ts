import { describe, expect, it } from "vitest";
import { placementStatus, withCondition } from "../../src/domain/microvm-status.js";

const T0 = "2026-01-01T00:00:00Z";
const T1 = "2026-01-01T00:01:00Z";

describe("placementStatus", () => {
  it("writes Placed once, and nothing for the same observation again (a replayed event)", () => {
    const placed = placementStatus({}, { kind: "bound", node: "a" }, T0)!;
    expect(placed).toMatchObject({ phase: "Placed", node: "a" });
    expect(placementStatus(placed, { kind: "bound", node: "a" }, T1)).toBeUndefined();
  });

  it("does not step back over the node agent's phases on the same node, but does on another", () => {
    const running = { ...placementStatus({}, { kind: "bound", node: "a" }, T0)!, phase: "Running" as const, ip: "10.0.0.2" };
    expect(placementStatus(running, { kind: "bound", node: "a" }, T1)).toBeUndefined();
    const moved = placementStatus(running, { kind: "bound", node: "b" }, T1)!;
    expect(moved).toMatchObject({ phase: "Placed", node: "b" });
    expect(moved.ip).toBeUndefined();
  });

  it("keeps a condition's lastTransitionTime while its status holds", () => {
    const c1 = withCondition(undefined, { type: "Scheduled", status: "False", reason: "Unschedulable", message: "x" }, T0);
    const c2 = withCondition(c1, { type: "Scheduled", status: "False", reason: "Unschedulable", message: "y" }, T1);
    expect(c2[0]).toMatchObject({ message: "y", lastTransitionTime: T0 });
    const c3 = withCondition(c2, { type: "Scheduled", status: "True", reason: "Scheduled", message: "z" }, T1);
    expect(c3[0]!.lastTransitionTime).toBe(T1);
  });

  it("marks NodeLost and clears it as Replaced when bound again", () => {
    const lost = placementStatus({ phase: "Running", node: "a" }, { kind: "nodeLost", node: "a", reason: "NodeDeleted", message: "gone" }, T0)!;
    expect(lost).toMatchObject({ phase: "NodeLost", node: "a", lastError: "gone" });
    const again = placementStatus(lost, { kind: "bound", node: "b" }, T1)!;
    expect(again.conditions).toContainEqual({
      type: "NodeLost",
      status: "False",
      reason: "Replaced",
      message: "placed again on node b",
      lastTransitionTime: T1,
    });
  });
});
