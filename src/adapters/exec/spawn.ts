import { setTimeout as sleep } from "node:timers/promises";
import type { DetachedEnd, DetachedOptions, ExecRunner } from "./runner.js";
import { procStartTime, terminate } from "./proc.js";

export interface SpawnUntilReady extends DetachedOptions {
  cmd: string;
  args: string[];
  /** Names the process in messages, e.g. "firecracker". */
  what: string;
  /** Names what `ready` polls, e.g. "API socket". */
  socket: string;
  /** Resolves once the control socket answers; a rejection means "not yet". */
  ready(): Promise<unknown>;
  timeoutMs: number;
  pollMs: number;
  signal?: AbortSignal;
  /** Turns a failure message into the error to throw (e.g. with the VMM's log tail). */
  failed(message: string, end?: DetachedEnd): Promise<Error> | Error;
}

const KILL_GRACE_MS = 2_000;

/**
 * The spawn-then-poll both VMM drivers (and the KVM probe) share: start the process detached,
 * then poll its control socket until it answers. Fails when the process cannot start or exits
 * first, when the deadline passes (the process is terminated), or on abort (terminated too; the
 * signal's reason is thrown). Returns the pid and its /proc start time.
 */
export async function spawnUntilReady(runner: ExecRunner, o: SpawnUntilReady): Promise<{ pid: number; pidStart: number }> {
  o.signal?.throwIfAborted();
  const proc = runner.spawnDetached(o.cmd, o.args, { output: o.output, append: o.append, env: o.env, cwd: o.cwd, inheritFds: o.inheritFds });
  const pid = proc.pid;
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    await sleep(o.pollMs);
    const end = proc.end();
    if (end?.kind === "spawn-error") throw await o.failed(end.detail, end);
    if (end || pid === undefined) throw await o.failed(`${o.what} ${end?.detail ?? "did not start"} before its ${o.socket} answered`, end);
    if (o.signal?.aborted) {
      await terminate(pid, undefined, KILL_GRACE_MS);
      o.signal.throwIfAborted();
    }
    try {
      await o.ready();
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        await terminate(pid, undefined, KILL_GRACE_MS);
        throw await o.failed(`${o.what} ${o.socket} did not answer within ${o.timeoutMs} ms (${(e as Error).message})`);
      }
    }
  }
  const pidStart = procStartTime(pid);
  if (pidStart === undefined) throw await o.failed(`${o.what} exited right after its ${o.socket} answered`);
  return { pid, pidStart };
}
