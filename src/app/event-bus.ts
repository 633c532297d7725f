import type { LifecycleEvent, Vm } from "../domain/types.js";

/** What changed, as pushed to `GET /v1/events` listeners (docs/api.md, "Events"). */
export type BusEvent =
  { type: "vm"; vm: Vm } | { type: "vm-removed"; id: string; name: string } | { type: "stage"; event: LifecycleEvent } | { type: "images" };

export type Sequenced = BusEvent & { seq: number };

/**
 * In-process fan-out of state changes. Publishing is synchronous and never throws into the
 * publisher (a store write): a listener that fails is dropped. Nothing is kept, so a daemon
 * without listeners pays one counter increment per change.
 */
export class EventBus {
  private readonly listeners = new Set<(e: Sequenced) => void>();
  private seq = 0;

  publish(e: BusEvent): void {
    const ev = { ...e, seq: ++this.seq } as Sequenced;
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
}
