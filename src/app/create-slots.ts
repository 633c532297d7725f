import { BangerError } from "../domain/errors.js";

/**
 * A FIFO of create slots: at most `limit` holders at once, waiters served in arrival order.
 * Hand-written rather than p-limit or async-mutex because a waiter must be able to leave the
 * queue on its own signal (a MicroVM deleted while queued) without cancelling the others.
 */
export class CreateSlots {
  private active = 0;
  private readonly queue: { grant: () => void; onAbort: () => void }[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`create slots: limit must be a positive integer, got ${limit}`);
  }

  get holders(): number {
    return this.active;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** A slot now, or undefined when all are held (the caller can say it is queued, then `acquire`). */
  tryAcquire(): (() => void) | undefined {
    if (this.active >= this.limit || this.queue.length > 0) return undefined;
    this.active++;
    return this.releaser();
  }

  /** Resolves with a release function once a slot is free; rejects with CANCELLED when `signal` aborts first. */
  acquire(signal: AbortSignal): Promise<() => void> {
    const now = this.tryAcquire();
    if (now) return Promise.resolve(now);
    if (signal.aborted) return Promise.reject(cancelled());
    return new Promise((resolve, reject) => {
      const entry = {
        grant: () => {
          signal.removeEventListener("abort", entry.onAbort);
          this.active++;
          resolve(this.releaser());
        },
        onAbort: () => {
          const i = this.queue.indexOf(entry);
          if (i >= 0) this.queue.splice(i, 1);
          reject(cancelled());
        },
      };
      signal.addEventListener("abort", entry.onAbort, { once: true });
      this.queue.push(entry);
    });
  }

  /** Each release frees its slot once, whatever the caller does twice. */
  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      this.queue.shift()?.grant();
    };
  }
}

function cancelled(): BangerError {
  return new BangerError("CANCELLED", "left the create queue before a slot was free");
}
