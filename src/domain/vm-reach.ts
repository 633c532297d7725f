import { BangerError } from "./errors.js";
import type { Vm } from "./types.js";

/** What a caller wants from a guest; each needs it running (`follow`: a live console). */
export type GuestUse = "ssh" | "exec" | "follow" | "connect";

const DOING: Record<GuestUse, string> = {
  ssh: "ssh needs it running",
  exec: "exec needs it running",
  follow: "there is no live console to follow",
  connect: "its guest ports are reachable only while it runs",
};

/** What the user can do about each state, in their words: the command that gets them going, or where to look. */
function whatToDo(vm: Vm): string {
  const n = vm.name;
  switch (vm.state) {
    case "stopped":
      return `start it with \`banger vm start ${n}\``;
    case "creating":
      return `wait for its create to finish (\`banger vm show ${n}\` shows the stages so far; \`banger vm logs ${n}\` the console)`;
    case "starting":
      return `wait for its start to finish (\`banger vm show ${n}\` shows the stages so far)`;
    case "stopping":
      return `it is shutting down; start it again with \`banger vm start ${n}\` once it is stopped`;
    case "deleting":
      return "it is being removed; `banger vm ls` lists the VMs that remain";
    case "failed":
      return `\`banger vm show ${n}\` says what went wrong; \`banger vm rm ${n}\` removes it`;
    case "running":
      return `\`banger vm show ${n}\` shows its state`;
  }
}

/**
 * The one rule for reaching into a guest (`vm ssh`, `vm exec`, `vm logs --follow`, guest
 * streams): only a running VM answers, so anything else is refused at once with its state and
 * the next step, instead of leaving ssh to time out against an address nobody holds. A create
 * from a snapshot re-identifies its own guest while `creating`; only it passes `creating`.
 */
export function requireReachable(vm: Vm, use: GuestUse, opts: { creating?: boolean } = {}): void {
  if (vm.state === "running" || (opts.creating && vm.state === "creating")) return;
  const state = vm.state === "failed" && vm.lastError ? `failed (${vm.lastError.split("\n")[0]})` : vm.state;
  throw new BangerError("VM_NOT_RUNNING", `VM ${vm.name} is ${state}; ${DOING[use]}`, { hint: whatToDo(vm) });
}
