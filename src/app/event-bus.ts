import { randomBytes } from "node:crypto";
import type { LifecycleEvent, Vm } from "../domain/types.js";

/** What changed, as pushed to `GET /v1/events` listeners (docs/api.md, "Events"). */
export type BusEvent =
  { type: "vm"; vm: Vm } | { type: "vm-removed"; id: string; name: string } | { type: "stage"; event: LifecycleEvent } | { type: "images" };

export type Sequenced = BusEvent & { seq: number };

/** How many recent events are kept for `GET /v1/events?since=`; older tokens are answered EVENTS_EXPIRED. */
export const EVENT_HISTORY = 1024;

/**
 * In-process fan-out of state changes. Publishing is synchronous and never throws into the
 * publisher (a store write): a listener that fails is dropped. The last EVENT_HISTORY events are
 * kept so a client that lost its stream resumes after its last token instead of refetching
 * everything. Tokens are `<boot>.<seq>`: seq restarts with the daemon, so a token of another boot
 * can never be mistaken for one of this.
 */
export class EventBus {
  private readonly listeners = new Set<(e: Sequenced) => void>();
  private readonly history: Sequenced[] = [];
  private seq = 0;
  readonly boot = randomBytes(4).toString("hex");

  constructor(private readonly keep = EVENT_HISTORY) {}

  publish(e: BusEvent): void {
    const ev = { ...e, seq: ++this.seq } as Sequenced;
    this.history.push(ev);
    if (this.history.length > this.keep) this.history.shift();
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch {
        this.listeners.delete(l);
      }
    }
  }

  subscribe(listener: (e: Sequenced) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  token(seq: number): string {
    return `${this.boot}.${seq}`;
  }

  /** The token of the newest event (what a client that starts now resumes from). */
  get latest(): string {
    return this.token(this.seq);
  }

  /**
   * Events after `token`, or undefined when they can no longer be replayed completely: a token of
   * another daemon run, a malformed one, or one older than the kept history.
   */
  since(token: string): Sequenced[] | undefined {
    const m = /^([0-9a-f]{8})\.(\d+)$/.exec(token);
    if (!m || m[1] !== this.boot) return undefined;
    const after = Number(m[2]);
    if (after > this.seq) return undefined;
    const oldest = this.history[0]?.seq ?? this.seq + 1;
    if (after < oldest - 1) return undefined;
    return this.history.filter((e) => e.seq > after);
  }
}
