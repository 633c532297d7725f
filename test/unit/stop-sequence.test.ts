import { spawn, type ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { procStartTime } from "../../src/adapters/exec/proc.js";
import { runStopSequence, type StopRequestOutcome } from "../../src/adapters/exec/stop.js";

describe("runStopSequence (shared by both VMM drivers)", () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill("SIGKILL");
  });
  function proc(seconds: number): { pid: number; pidStart: number; child: ChildProcess } {
    const child = spawn("sleep", [String(seconds)], { stdio: "ignore" });
    children.push(child);
    return { pid: child.pid!, pidStart: procStartTime(child.pid!)!, child };
  }
  const run = (p: { pid: number; pidStart: number }, request: () => Promise<StopRequestOutcome>, timeoutMs = 10_000, graceMs?: number) =>
    runStopSequence({ ...p, timeoutMs, graceMs, what: "test", request, onSignal: () => undefined });

  it("a request that fails because the process is on its way out does not trigger SIGTERM", async () => {
    const p = proc(0.5);
    expect((await run(p, async () => "unreachable")).how).toBe("guest");
    expect(p.child.signalCode).toBeNull();
  });

  it("an accepted request followed by the exit is vmm-request", async () => {
    const p = proc(100);
    expect(
      (
        await run(p, async () => {
          setTimeout(() => p.child.kill("SIGINT"), 100);
          return "sent";
        })
      ).how,
    ).toBe("vmm-request");
  });

  it("an exit within graceMs is the guest's, and the VMM is not asked", async () => {
    const p = proc(0.3);
    let asked = false;
    expect(
      (
        await run(
          p,
          async () => {
            asked = true;
            return "sent";
          },
          10_000,
          5_000,
        )
      ).how,
    ).toBe("guest");
    expect(asked).toBe(false);
  });

  it("no guest to ask: SIGTERM at once, not at the deadline", async () => {
    const p = proc(100);
    const r = await run(p, async () => "no-guest", 60_000);
    expect(r.how).toBe("sigterm");
    expect(p.child.signalCode ?? "SIGTERM").toBe("SIGTERM");
  });

  it("an ignored request ends in SIGTERM at the deadline; a dead process is already-gone", async () => {
    const p = proc(100);
    expect((await run(p, async () => "sent", 300)).how).toBe("sigterm");
    expect((await run(p, async () => "sent")).how).toBe("already-gone");
  });
});
