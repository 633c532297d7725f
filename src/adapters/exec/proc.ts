import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Field 22 of /proc/<pid>/stat (start time in clock ticks since boot).
 * A pid plus this value names one process for its whole life, so a restarted
 * daemon can tell its VMM from an unrelated process that reused the pid.
 */
export function procStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) may contain spaces and parens; fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const start = Number(rest[19]);
    return Number.isFinite(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/** The process exists, is not a zombie, and (when given) started at pidStart. */
export function processAlive(pid: number, pidStart?: number): boolean {
  const start = procStartTime(pid);
  if (start === undefined || isZombie(pid)) return false;
  return pidStart === undefined || start === pidStart;
}

/** Poll until the process is gone; true when it exited within timeoutMs. */
export async function waitForExit(pid: number, pidStart: number | undefined, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid, pidStart)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/**
 * SIGTERM, wait, SIGKILL, wait. Safe when the process is already gone.
 * Says which signal ended it ("gone": it was not running; "survived": not even SIGKILL worked in 5 s).
 */
export async function terminate(pid: number, pidStart: number | undefined, graceMs: number): Promise<"gone" | "sigterm" | "sigkill" | "survived"> {
  if (!processAlive(pid, pidStart)) return "gone";
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return "gone";
  }
  if (await waitForExit(pid, pidStart, graceMs)) return "sigterm";
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return "sigterm";
  }
  return (await waitForExit(pid, pidStart, 5_000)) ? "sigkill" : "survived";
}

/** The host TSC frequency in kHz, which TCG guests need as tsc_early_khz to avoid a PIT-calibration hang. */
export function hostTscKhz(): number | undefined {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    return m ? Math.round(Number(m[1]) * 1000) : undefined;
  } catch {
    return undefined;
  }
}
