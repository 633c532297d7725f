// The garbage collector's part of the controller manager: dependents whose owners are all gone are deleted
// (background), dangling owner references next to live ones are dropped, an owner deleted with Foreground keeps its
// foregroundDeletion finalizer until no blockOwnerDeletion dependent is left, and Orphan detaches dependents first.
import { type Api } from "./api.js";
import { BUILTINS } from "./resources.js";
import { ApiError } from "./status.js";
import { type KObj, type OwnerReference, type ResourceType, apiVersionOf } from "./types.js";
import { type WriteCtx } from "./validate.js";

const ctx = (): WriteCtx => ({ fieldValidation: "Strict", warnings: [] });

export class GarbageCollector {
  private pending = false;
  private stopped = false;
  /** Failures the collector hit (a write the fake itself rejected); tests assert this stays empty. */
  readonly errors: string[] = [];

  constructor(private readonly api: Api) {
    api.store.subscribe(() => this.kick());
  }

  stop(): void {
    this.stopped = true;
  }

  private kick(): void {
    if (this.pending || this.stopped) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      if (!this.stopped) this.sweep();
    });
  }

  private typeOf(apiVersion: string, kind: string): ResourceType | undefined {
    const all = [...BUILTINS, ...this.api.registry.customTypes().map((c) => c.rt)];
    return all.find((rt) => apiVersionOf(rt) === apiVersion && rt.kind === kind) ?? all.find((rt) => rt.kind === kind && apiVersion.startsWith(`${rt.group}/`));
  }

  private owner(dependent: KObj, ref: OwnerReference): { rt: ResourceType; obj: KObj } | "unknown" | undefined {
    const rt = this.typeOf(ref.apiVersion, ref.kind);
    // An owner of a kind the fake does not serve is left alone, as the real collector retries unresolvable kinds.
    if (!rt) return "unknown";
    const obj = this.api.store.get(rt, dependent.metadata.namespace, ref.name);
    return obj && obj.metadata.uid === ref.uid ? { rt, obj } : undefined;
  }

  private attempt(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      // A dependent deleted or changed under us is retried on the next sweep; anything else is a bug in the fake.
      if (e instanceof ApiError && (e.code === 404 || e.code === 409)) return;
      this.errors.push(`${what}: ${(e as Error).message}`);
    }
  }

  sweep(): void {
    const everything = this.api.store.all();
    for (const { rt, obj } of everything) {
      const refs = obj.metadata.ownerReferences ?? [];
      if (refs.length === 0) continue;
      const keep: OwnerReference[] = [];
      let foreground = false;
      for (const ref of refs) {
        const o = this.owner(obj, ref);
        if (o === "unknown") keep.push(ref);
        else if (o && o.obj.metadata.deletionTimestamp && o.obj.metadata.finalizers?.includes("orphan")) continue;
        else if (o) {
          keep.push(ref);
          if (o.obj.metadata.deletionTimestamp && o.obj.metadata.finalizers?.includes("foregroundDeletion")) foreground = true;
        }
      }
      const name = obj.metadata.name!;
      const ns = obj.metadata.namespace;
      const liveOwners = keep.filter((r) => {
        const o = this.owner(obj, r);
        return o === "unknown" || (o && !o.obj.metadata.finalizers?.includes("foregroundDeletion"));
      });
      if (keep.length === 0 && refs.some((r) => this.owner(obj, r) === undefined)) {
        this.attempt(`delete ${rt.kind} ${name}`, () => this.api.delete(rt, ns, name, { propagationPolicy: "Background" }));
      } else if (foreground && liveOwners.length === 0) {
        this.attempt(`delete ${rt.kind} ${name}`, () => this.api.delete(rt, ns, name, { propagationPolicy: "Foreground" }));
      } else if (keep.length !== refs.length) {
        this.attempt(`drop owner refs of ${rt.kind} ${name}`, () =>
          this.api.patch(rt, ns, name, "application/merge-patch+json", { metadata: { ownerReferences: keep.length ? keep : null } }, ctx()),
        );
      }
    }
    // Owners waiting on dependents: foreground until no blocking dependent exists, orphan once none refer to it.
    const now = this.api.store.all();
    for (const { rt, obj } of now) {
      const fins = obj.metadata.finalizers ?? [];
      if (!obj.metadata.deletionTimestamp) continue;
      const dependents = now.filter((d) => (d.obj.metadata.ownerReferences ?? []).some((r) => r.uid === obj.metadata.uid));
      let done: string | undefined;
      if (
        fins.includes("foregroundDeletion") &&
        !dependents.some((d) => d.obj.metadata.ownerReferences!.some((r) => r.uid === obj.metadata.uid && r.blockOwnerDeletion))
      ) {
        done = "foregroundDeletion";
      } else if (fins.includes("orphan") && dependents.length === 0) done = "orphan";
      if (!done) continue;
      const left = fins.filter((f) => f !== done);
      this.attempt(`finalize ${rt.kind} ${obj.metadata.name}`, () =>
        this.api.patch(
          rt,
          obj.metadata.namespace,
          obj.metadata.name!,
          "application/merge-patch+json",
          { metadata: { finalizers: left.length ? left : null } },
          ctx(),
        ),
      );
    }
  }
}
