import { describe, expect, it } from "vitest";
import { renderEvents } from "../../src/cli/commands/vm.js";
import type { LifecycleEvent } from "../../src/domain/types.js";

const ev = (opId: number, op: string, stage: string, startedAt: string): LifecycleEvent => ({
  vmId: "vm-a",
  vmName: "a",
  opId,
  op,
  stage,
  startedAt,
  durationMs: 5,
  outcome: "ok",
});

describe("renderEvents", () => {
  it("prints one block per operation, so two starts are two blocks", () => {
    const out = renderEvents([
      ev(1, "create", "tap", "2026-01-01T00:00:00.000Z"),
      ev(1, "create", "total", "2026-01-01T00:00:00.000Z"),
      ev(4, "start", "tap", "2026-01-01T01:00:00.000Z"),
      ev(4, "start", "total", "2026-01-01T01:00:00.000Z"),
      ev(9, "start", "tap", "2026-01-01T02:00:00.000Z"),
      ev(9, "start", "total", "2026-01-01T02:00:00.000Z"),
    ]);
    const headers = out.split("\n").filter((l) => /^\S/.test(l) && !l.includes("STAGE"));
    expect(headers).toEqual(["create (2026-01-01 00:00:00)", "start (2026-01-01 01:00:00)", "start (2026-01-01 02:00:00)"]);
  });
});
