import { BangerError } from "./errors.js";

/**
 * A VM's lifecycle. Every state change is one of the edges below; the store
 * applies it as a compare-and-swap, so two operations that raced past their
 * checks cannot both win.
 *
 *   creating ─► running ◄─► stopping ─► stopped ─► starting ─► running
 *      │           │  (VMM exited on its own) ▲        │
 *      │           └──────────────────────────┘        └─► stopped (start failed, rolled back)
 *      └─► failed (a rollback could not finish)    any settled state ─► deleting ─► (row gone)
 *
 * `failed` means banger could not put the host side back in order (an undo
 * failed, or a VMM survived SIGKILL). Only `rm` leaves it: starting again
 * from an unknown host state would hide the problem.
 */
export type VmState = "creating" | "starting" | "running" | "stopping" | "stopped" | "deleting" | "failed";

/** Operations that hold a VM's lock. `exit` is the reconciler recording a VMM that ended by itself; `port` adds or removes a forward. */
export type VmOp = "create" | "start" | "stop" | "delete" | "exit" | "port" | "peer";

const EDGES: Record<VmState, readonly VmState[]> = {
  creating: ["running", "failed", "deleting"],
  starting: ["running", "stopped", "failed"],
  running: ["stopping", "stopped", "deleting", "failed"],
  stopping: ["stopped", "failed"],
  stopped: ["starting", "deleting"],
  failed: ["deleting"],
  deleting: ["failed"],
};

/** States in which an operation is under way; a VM found in one at daemon start was interrupted. */
export const TRANSIENT_STATES: readonly VmState[] = ["creating", "starting", "stopping", "deleting"];

export function canTransition(from: VmState, to: VmState): boolean {
  return EDGES[from].includes(to);
}

/** Throws for an edge the machine does not have: reaching one is a bug in banger, not a user error. */
export function assertTransition(name: string, from: VmState, to: VmState): void {
  if (!canTransition(from, to)) {
    throw new BangerError("INTERNAL", `illegal state change for VM ${name}: ${from} -> ${to}`);
  }
}

/** What an operation needs the VM to be in, and what it moves it to while it runs. */
export const OP_ENTRY: Record<Exclude<VmOp, "create" | "port" | "peer">, { from: readonly VmState[]; via: VmState }> = {
  start: { from: ["stopped"], via: "starting" },
  stop: { from: ["running"], via: "stopping" },
  delete: { from: ["running", "stopped", "failed"], via: "deleting" },
  exit: { from: ["running"], via: "stopped" },
};

/** The user-facing refusal when a VM is not in a state the operation accepts. */
export function wrongState(name: string, op: VmOp, state: VmState): BangerError {
  const hints: Partial<Record<VmState, string>> = {
    running: op === "start" ? "it is already running" : `stop it first (\`banger vm stop ${name}\`) or pass --force to \`banger vm rm\``,
    stopped: op === "stop" ? "it is already stopped" : `\`banger vm start ${name}\` starts it`,
    failed: `its host side could not be cleaned up; \`banger vm show ${name}\` says why, \`banger vm rm ${name}\` removes it`,
  };
  return new BangerError("VM_STATE", `VM ${name} is ${state}; cannot ${op} it`, { hint: hints[state] ?? `\`banger vm show ${name}\` shows its state` });
}
