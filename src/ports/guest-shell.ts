import type { SshTarget } from "./guest.js";

export interface ShellRunOptions {
  /** Written to the command's stdin, then closed; empty when absent, so nothing waits on a terminal. */
  input?: string;
  /** Hard limit for this command; it is killed at the deadline and the run rejects with TIMEOUT. */
  timeoutMs: number;
  /** Kills the command; the run rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Each complete line of output as it arrives. */
  onLine(stream: "stdout" | "stderr", line: string): void;
}

/** A command in the guest as root, its output streamed line by line (image build's provisioning steps). */
export interface GuestShell {
  run(target: SshTarget, command: string, opts: ShellRunOptions): Promise<{ code: number }>;
}
