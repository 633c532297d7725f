import { BangerError } from "../../domain/errors.js";
import type { StopResult } from "../../ports/vmm.js";
import { processAlive, terminate, waitForExit } from "./proc.js";

/**
 * What the VMM's own stop request achieved:
 * - "sent": the VMM accepted it; the guest (or the VMM) should now end the process;
 * - "no-guest": the VMM answered, but nothing will end the process (a guest that never ran);
 * - "unreachable": the control socket did not answer, e.g. because the guest is mid-reboot and the
 *   process is on its way out. Not a reason to signal early.
 */
export type StopRequestOutcome = "sent" | "no-guest" | "unreachable";

export interface StopSequence {
  pid: number;
  pidStart: number;
  timeoutMs: number;
  graceMs?: number;
  /** The VMM's request; given the time left before the deadline. */
  request(budgetMs: number): Promise<StopRequestOutcome>;
  /** Called before falling back to signals, with the reason. */
  onSignal(reason: string): void;
  /** Names the VMM in the error when even SIGKILL fails. */
  what: string;
}

// After SIGTERM: how long a VMM gets to flush and exit before SIGKILL.
const SIGTERM_GRACE_MS = 3_000;

/** The stop sequence both drivers share: guest exit, VMM request, SIGTERM, SIGKILL. */
export async function runStopSequence(s: StopSequence): Promise<StopResult> {
  const t0 = Date.now();
  const result = (how: StopResult["how"]): StopResult => ({ how, ms: Date.now() - t0 });
  if (!processAlive(s.pid, s.pidStart)) return result("already-gone");
  const deadline = t0 + s.timeoutMs;
  const left = () => Math.max(0, deadline - Date.now());

  const grace = Math.min(s.graceMs ?? 0, s.timeoutMs);
  if (grace > 0 && (await waitForExit(s.pid, s.pidStart, grace))) return result("guest");

  let outcome: StopRequestOutcome = "unreachable";
  if (left() > 0) {
    outcome = await s.request(left());
    if (outcome !== "no-guest" && (await waitForExit(s.pid, s.pidStart, left()))) {
      return result(outcome === "sent" ? "vmm-request" : "guest");
    }
  }
  s.onSignal(outcome === "no-guest" ? "no guest to stop" : `still running after ${s.timeoutMs} ms`);
  const how = await terminate(s.pid, s.pidStart, SIGTERM_GRACE_MS);
  if (how === "survived") {
    throw new BangerError("VMM_FAILED", `${s.what} pid ${s.pid} survived SIGTERM and SIGKILL`, {
      hint: "check `ps -o stat -p <pid>` for a process stuck in D state",
    });
  }
  return result(how === "gone" ? "guest" : how);
}
