// The fake's etcd: objects by key, one global monotonically increasing revision that becomes every object's
// metadata.resourceVersion, and a bounded history of changes that watches replay from. Once a change falls out of
// the window (or compact() drops it), a watch from before it is answered 410 Gone, as etcd compaction makes happen.
import { type Change, type KObj, type ResourceType, type WatchType, keyOf } from "./types.js";

export interface StoreOptions {
  /** How many changes the history keeps (the real default is about 5 minutes of etcd history). */
  historyLimit?: number;
}

type Listener = (c: Change) => void;

export class Store {
  private rev = 1;
  private readonly objects = new Map<string, { rt: ResourceType; obj: KObj }>();
  private history: Change[] = [];
  /** Every change with rv <= compactedRev is gone from history. */
  private compactedRev = 0;
  private readonly listeners = new Set<Listener>();
  private readonly historyLimit: number;

  constructor(opts: StoreOptions = {}) {
    this.historyLimit = opts.historyLimit ?? 1000;
  }

  get revision(): number {
    return this.rev;
  }

  get oldestWatchable(): number {
    return this.compactedRev;
  }

  get(rt: ResourceType, ns: string | undefined, name: string): KObj | undefined {
    const hit = this.objects.get(keyOf(rt, rt.namespaced ? ns : undefined, name));
    return hit ? structuredClone(hit.obj) : undefined;
  }

  /** Objects of a type, sorted by key as etcd range reads return them; ns undefined means all namespaces. */
  list(rt: ResourceType, ns?: string): KObj[] {
    const prefix = `${rt.group}/${rt.plural}/${rt.namespaced && ns !== undefined ? `${ns}/` : ""}`;
    return [...this.objects.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, v]) => structuredClone(v.obj));
  }

  /** Every stored object of every type; used by the garbage collector to find dependents. */
  all(): { rt: ResourceType; obj: KObj }[] {
    return [...this.objects.values()].map((v) => ({ rt: v.rt, obj: structuredClone(v.obj) }));
  }

  /** Writes obj (stamping the next revision) and records the change. prev is the object it replaces, if any. */
  put(rt: ResourceType, obj: KObj): KObj {
    const key = keyOf(rt, obj.metadata.namespace, obj.metadata.name!);
    const prev = this.objects.get(key)?.obj;
    const stored = structuredClone(obj);
    stored.metadata.resourceVersion = String(++this.rev);
    this.objects.set(key, { rt, obj: stored });
    this.record(prev ? "MODIFIED" : "ADDED", rt, stored, prev);
    return structuredClone(stored);
  }

  /** Removes the object; the DELETED event carries it with a fresh resourceVersion, as the real server's does. */
  remove(rt: ResourceType, ns: string | undefined, name: string): KObj | undefined {
    const key = keyOf(rt, rt.namespaced ? ns : undefined, name);
    const hit = this.objects.get(key);
    if (!hit) return undefined;
    this.objects.delete(key);
    const gone = structuredClone(hit.obj);
    gone.metadata.resourceVersion = String(++this.rev);
    this.record("DELETED", rt, gone, hit.obj);
    return structuredClone(gone);
  }

  private record(type: WatchType, rt: ResourceType, obj: KObj, prev?: KObj): void {
    const change: Change = { rv: this.rev, type, rt, obj: structuredClone(obj), prev: prev ? structuredClone(prev) : undefined };
    this.history.push(change);
    if (this.history.length > this.historyLimit) {
      const drop = this.history.length - this.historyLimit;
      this.compactedRev = this.history[drop - 1].rv;
      this.history = this.history.slice(drop);
    }
    for (const l of [...this.listeners]) l(change);
  }

  /** Changes after rv, or undefined when some of them were compacted away (the caller answers 410). */
  since(rv: number): Change[] | undefined {
    if (rv < this.compactedRev) return undefined;
    return this.history.filter((c) => c.rv > rv);
  }

  /** Test hook: forget history up to and including rev (default: everything so far), like etcd compaction. */
  compact(rev = this.rev): void {
    this.compactedRev = Math.max(this.compactedRev, Math.min(rev, this.rev));
    this.history = this.history.filter((c) => c.rv > this.compactedRev);
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
