import { BangerError } from "../domain/errors.js";
import type { VmOp } from "../domain/vm-state.js";

/** Operations that a client disconnect, `rm --force` or daemon shutdown may cancel: each undoes itself fully. */
const CANCELLABLE: ReadonlySet<VmOp> = new Set(["create", "start"]);

export interface OpTicket {
  readonly name: string;
  readonly op: VmOp;
  readonly startedAt: Date;
  /** Aborted on cancel (rm --force, shutdown), on the caller's own signal, or at the deadline; its reason is a BangerError. */
  readonly signal: AbortSignal;
  release(): void;
}

interface Held {
  ticket: OpTicket;
  cancel(why: BangerError): void;
  done: Promise<void>;
}

/**
 * One operation per VM at a time, in this daemon. The lock is taken before
 * anything is read or written and held until the operation has settled
 * (undos included), so an operation never sees another one half done.
 * Conflicts are refused with VM_BUSY rather than queued: a queued `start`
 * behind a `rm` would act on a VM the caller no longer expects, and agents
 * retry cheaply. Keys are VM names, so a create holds its name before the row
 * exists.
 */
export class VmOps {
  private readonly held = new Map<string, Held>();
  private closing = false;

  /** Take the lock or throw VM_BUSY naming the operation in progress. */
  begin(name: string, op: VmOp, opts: { signal?: AbortSignal; deadlineMs?: number } = {}): OpTicket {
    if (this.closing) {
      throw new BangerError("CANCELLED", `bangerd is shutting down; ${op} of VM ${name} was not started`, {
        hint: "retry once the daemon is back (`banger daemon start`)",
      });
    }
    const busy = this.held.get(name);
    if (busy) throw busyError(name, op, busy.ticket);
    // One controller whose reason is always a BangerError, whatever fired it, so the
    // cancelled plan reports why (client gone, deadline, rm --force, shutdown).
    const controller = new AbortController();
    const cancel = (why: BangerError) => {
      if (!controller.signal.aborted) controller.abort(why);
    };
    const onClientGone = () => cancel(new BangerError("CANCELLED", `${op} of VM ${name} was cancelled: the client went away`));
    if (opts.signal?.aborted) onClientGone();
    opts.signal?.addEventListener("abort", onClientGone, { once: true });
    const timer =
      opts.deadlineMs === undefined
        ? undefined
        : setTimeout(
            () =>
              cancel(
                new BangerError("TIMEOUT", `${op} of VM ${name} did not finish within ${Math.round(opts.deadlineMs! / 1000)} s`, {
                  hint: "raise op_timeout_s in the config if the guest is just slow",
                }),
              ),
            opts.deadlineMs,
          );
    timer?.unref();
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    const h: Held = {
      cancel,
      done,
      ticket: {
        name,
        op,
        startedAt: new Date(),
        signal: controller.signal,
        release: () => {
          clearTimeout(timer);
          opts.signal?.removeEventListener("abort", onClientGone);
          if (this.held.get(name) === h) this.held.delete(name);
          finish();
        },
      },
    };
    this.held.set(name, h);
    return h.ticket;
  }

  /** Like begin, but undefined instead of VM_BUSY; for background work that simply tries again later. */
  tryBegin(name: string, op: VmOp): OpTicket | undefined {
    if (this.closing || this.held.has(name)) return undefined;
    return this.begin(name, op);
  }

  /** Names holding the lock for this operation now: background work that must not compete with a boot checks it. */
  inFlight(op: VmOp): string[] {
    return [...this.held.values()].filter((h) => h.ticket.op === op).map((h) => h.ticket.name);
  }

  current(name: string): { op: VmOp; startedAt: Date } | undefined {
    const h = this.held.get(name);
    return h && { op: h.ticket.op, startedAt: h.ticket.startedAt };
  }

  /**
   * For `rm --force`: cancel a cancellable operation in progress and wait for
   * it to unwind. A stop or delete is left to finish (both are bounded).
   */
  async preempt(name: string, why: BangerError): Promise<VmOp | undefined> {
    const h = this.held.get(name);
    if (!h) return undefined;
    if (CANCELLABLE.has(h.ticket.op)) h.cancel(why);
    await h.done;
    return h.ticket.op;
  }

  /**
   * Daemon shutdown: refuse new operations, cancel creates and starts (their
   * undo runs), let stops and deletes finish, and wait for all of it up to
   * timeoutMs. Returns the names still busy when time ran out.
   */
  async drain(timeoutMs: number): Promise<string[]> {
    this.closing = true;
    const why = new BangerError("CANCELLED", "bangerd is shutting down", { hint: "retry once the daemon is back (`banger daemon start`)" });
    for (const h of this.held.values()) if (CANCELLABLE.has(h.ticket.op)) h.cancel(why);
    const all = Promise.all([...this.held.values()].map((h) => h.done));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(r, timeoutMs);
    });
    await Promise.race([all, timeout]);
    clearTimeout(timer);
    return [...this.held.keys()];
  }
}

function busyError(name: string, wanted: VmOp, ticket: OpTicket): BangerError {
  const secs = Math.round((Date.now() - ticket.startedAt.getTime()) / 1000);
  const cancel = CANCELLABLE.has(ticket.op) ? ` or cancel it with \`banger vm rm --force ${name}\`` : "";
  return new BangerError("VM_BUSY", `VM ${name} is busy: ${ticket.op} in progress for ${secs} s; cannot ${wanted} it now`, {
    hint: `wait for the ${ticket.op} to finish and retry${cancel}; \`banger vm show ${name}\` shows its stages`,
  });
}
