// The verbs on stored objects (the real server's generic registry): create, get, list, update, patch, delete,
// the status subresource and pods/binding, with optimistic concurrency on resourceVersion and finalizers.
import { randomUUID } from "node:crypto";
import { CustomSchemas, crdCauses } from "./crd.js";
import { APPLY, JSON_PATCH, MERGE, STRATEGIC, jsonPatch, mergePatch, strategicMerge } from "./patch.js";
import { BINDING_DEFINITION, Registry, builtin } from "./resources.js";
import { type SwaggerSchemas } from "./schema.js";
import { type Matcher } from "./selectors.js";
import { ApiError, alreadyExists, badRequest, conflict, gone, invalid, notFound, success, type StatusBody } from "./status.js";
import { type Store } from "./store.js";
import { now, prepareForCreate, prepareForUpdate } from "./strategies.js";
import { type KObj, type ResourceType, apiVersionOf, canonical } from "./types.js";
import { Admission, type WriteCtx, dropNulls } from "./validate.js";

export type Propagation = "Background" | "Foreground" | "Orphan";
export interface DeleteOpts {
  propagationPolicy?: Propagation;
  preconditions?: { uid?: string; resourceVersion?: string };
}
export interface ListOpts {
  label: Matcher;
  field: Matcher;
  limit?: number;
  continueToken?: string;
}

const STALE = "the object has been modified; please apply your changes to the latest version and try again";
const nsOf = (rt: ResourceType, ns: string | undefined) => (rt.namespaced ? ns : undefined);

export class Api {
  readonly registry = new Registry();
  readonly admission: Admission;

  constructor(
    readonly store: Store,
    readonly swagger: SwaggerSchemas,
  ) {
    const custom = new CustomSchemas();
    this.admission = new Admission(swagger, custom, (rt) => this.registry.customType(rt)?.schema);
  }

  private mustGet(rt: ResourceType, ns: string | undefined, name: string): KObj {
    const obj = this.store.get(rt, nsOf(rt, ns), name);
    if (!obj) throw notFound(rt.group, rt.plural, name);
    return obj;
  }

  /** Objects carry the apiVersion of the endpoint they are read through (all served versions share storage). */
  private view(rt: ResourceType, obj: KObj): KObj {
    const { apiVersion: _a, kind: _k, ...rest } = obj;
    return { apiVersion: apiVersionOf(rt), kind: rt.kind, ...rest } as KObj;
  }

  get(rt: ResourceType, ns: string | undefined, name: string): KObj {
    return this.view(rt, this.mustGet(rt, ns, name));
  }

  list(rt: ResourceType, ns: string | undefined, opts: ListOpts): KObj {
    const rev = this.store.revision;
    let items = this.store.list(rt, nsOf(rt, ns)).filter((o) => opts.label(o) && opts.field(o));
    if (opts.continueToken) {
      let tok: { rv: number; after: string };
      try {
        tok = JSON.parse(Buffer.from(opts.continueToken, "base64url").toString()) as { rv: number; after: string };
      } catch {
        throw badRequest("continue key is not valid: illegal base64 data");
      }
      if (tok.rv < this.store.oldestWatchable)
        throw gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.");
      items = items.filter((o) => `${o.metadata.namespace ?? ""}/${o.metadata.name}` > tok.after);
    }
    const meta: Record<string, unknown> = { resourceVersion: String(rev) };
    if (opts.limit && opts.limit > 0 && items.length > opts.limit) {
      const last = items[opts.limit - 1];
      meta.continue = Buffer.from(JSON.stringify({ rv: rev, after: `${last.metadata.namespace ?? ""}/${last.metadata.name}` })).toString("base64url");
      meta.remainingItemCount = items.length - opts.limit;
      items = items.slice(0, opts.limit);
    }
    // Built-in lists carry items without apiVersion/kind, custom resource lists with them, as the real server sends.
    const shaped = items.map((o) => (rt.definition ? ({ ...o, apiVersion: undefined, kind: undefined } as KObj) : this.view(rt, o)));
    return { apiVersion: apiVersionOf(rt), kind: `${rt.kind}List`, metadata: meta, items: JSON.parse(JSON.stringify(shaped)) as KObj[] } as unknown as KObj;
  }

  create(rt: ResourceType, ns: string | undefined, body: unknown, ctx: WriteCtx): KObj {
    if (!body || typeof body !== "object" || Array.isArray(body)) throw badRequest("the body of the request was not a JSON object");
    const obj = dropNulls(body) as KObj;
    obj.metadata = (obj.metadata as KObj["metadata"] | undefined) ?? {};
    const meta = obj.metadata;
    if (rt.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== ns)
        throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
      meta.namespace = ns;
      if (!this.store.get(builtin("namespaces"), undefined, ns!)) throw notFound("", "namespaces", ns!);
    } else delete meta.namespace;
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomUUID().replace(/-/g, "").slice(0, 5)}`;
    for (const k of ["uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"]) delete meta[k];
    this.admission.admit(rt, obj, ctx, rt.kind === "CustomResourceDefinition" ? crdCauses : undefined);
    if (this.store.get(rt, meta.namespace, meta.name!)) throw alreadyExists(rt.group, rt.plural, meta.name!);
    prepareForCreate(rt, obj);
    meta.uid = randomUUID();
    meta.creationTimestamp = now();
    meta.generation = 1;
    const stored = this.store.put(rt, obj);
    if (rt.kind === "CustomResourceDefinition") this.registry.addCrd(stored);
    return this.view(rt, stored);
  }

  update(rt: ResourceType, ns: string | undefined, name: string, body: unknown, ctx: WriteCtx, sub?: "status"): KObj {
    if (!body || typeof body !== "object") throw badRequest("the body of the request was not a JSON object");
    const next = dropNulls(body) as KObj;
    next.metadata ??= {};
    if (next.metadata.name !== undefined && next.metadata.name !== name)
      throw badRequest("the name of the object (" + next.metadata.name + ") does not match the name on the URL (" + name + ")");
    const old = this.mustGet(rt, ns, name);
    const rv = next.metadata.resourceVersion;
    if (rv === undefined && !rt.definition) {
      throw invalid(rt.group, rt.kind, name, [
        { reason: "FieldValueInvalid", field: "metadata.resourceVersion", message: "Invalid value: 0x0: must be specified for an update" },
      ]);
    }
    if (rv !== undefined && rv !== old.metadata.resourceVersion) throw conflict(rt.group, rt.plural, name, STALE);
    return this.write(rt, old, next, ctx, sub);
  }

  patch(rt: ResourceType, ns: string | undefined, name: string, contentType: string, patch: unknown, ctx: WriteCtx, sub?: "status"): KObj {
    const old = this.mustGet(rt, ns, name);
    const base = this.view(rt, structuredClone(old));
    let next: unknown;
    if (contentType === MERGE) next = mergePatch(base, patch);
    else if (contentType === JSON_PATCH) next = jsonPatch(base, patch);
    else if (contentType === STRATEGIC) {
      if (!rt.definition)
        throw new ApiError(
          415,
          "UnsupportedMediaType",
          `the body of the request was in an unknown format - accepted media types include: ${JSON_PATCH}, ${MERGE}, ${APPLY}`,
        );
      next = strategicMerge(this.swagger, rt.definition, base, patch);
    } else
      throw new ApiError(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: ${JSON_PATCH}, ${MERGE}, ${STRATEGIC}`,
      );
    const nextObj = dropNulls(next) as KObj;
    const rv = nextObj.metadata?.resourceVersion;
    // A patch that carries a resourceVersion is a precondition, as on the real server.
    if (rv !== undefined && rv !== old.metadata.resourceVersion) throw conflict(rt.group, rt.plural, name, STALE);
    if (nextObj.metadata?.name !== name) throw badRequest("metadata.name may not be changed by a patch");
    return this.write(rt, old, nextObj, ctx, sub);
  }

  private write(rt: ResourceType, old: KObj, next: KObj, ctx: WriteCtx, sub?: "status"): KObj {
    const out = prepareForUpdate(rt, old, next, sub);
    if (rt.kind === "CustomResourceDefinition") {
      this.admission.admit(rt, out, ctx, crdCauses);
      const oldSpec = old.spec as { group: string; names: { plural: string }; scope: string };
      const newSpec = out.spec as { group: string; names: { plural: string }; scope: string };
      if (oldSpec.group !== newSpec.group || oldSpec.names.plural !== newSpec.names.plural || oldSpec.scope !== newSpec.scope) {
        throw invalid(rt.group, rt.kind, old.metadata.name!, [
          { reason: "FieldValueInvalid", field: "spec", message: "Invalid value: group, names.plural and scope are immutable" },
        ]);
      }
    } else this.admission.admit(rt, out, ctx);
    const same =
      canonical({ ...out, metadata: { ...out.metadata, resourceVersion: undefined } }) ===
      canonical({ ...this.view(rt, old), metadata: { ...old.metadata, resourceVersion: undefined } });
    // A write that changes nothing is not stored again: no new resourceVersion, no watch event.
    if (same) return this.view(rt, old);
    const stored = this.store.put(rt, out);
    if (rt.kind === "CustomResourceDefinition") this.registry.addCrd(stored);
    if (stored.metadata.deletionTimestamp && (stored.metadata.finalizers ?? []).length === 0) this.finish(rt, stored);
    return this.view(rt, stored);
  }

  delete(rt: ResourceType, ns: string | undefined, name: string, opts: DeleteOpts): KObj | StatusBody {
    const obj = this.mustGet(rt, ns, name);
    const pre = opts.preconditions ?? {};
    if (pre.uid && pre.uid !== obj.metadata.uid)
      throw conflict(rt.group, rt.plural, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${obj.metadata.uid}`);
    if (pre.resourceVersion && pre.resourceVersion !== obj.metadata.resourceVersion) {
      throw conflict(
        rt.group,
        rt.plural,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${obj.metadata.resourceVersion}`,
      );
    }
    const finalizers = new Set(obj.metadata.finalizers ?? []);
    if (opts.propagationPolicy === "Foreground") {
      finalizers.delete("orphan");
      finalizers.add("foregroundDeletion");
    } else if (opts.propagationPolicy === "Orphan") {
      finalizers.delete("foregroundDeletion");
      finalizers.add("orphan");
    }
    if (finalizers.size > 0) {
      const marked = structuredClone(obj);
      marked.metadata.finalizers = [...finalizers];
      marked.metadata.deletionTimestamp ??= now();
      marked.metadata.deletionGracePeriodSeconds ??= 0;
      const changed = canonical(marked) !== canonical(obj);
      return this.view(rt, changed ? this.store.put(rt, marked) : obj);
    }
    const gone = this.finish(rt, obj);
    if (rt.kind === "Pod" || !rt.definition) return this.view(rt, gone);
    return success(200, { name, group: rt.group || undefined, kind: rt.plural, uid: obj.metadata.uid });
  }

  /** Removes an object whose finalizers are done; a CRD takes its custom resources with it. */
  finish(rt: ResourceType, obj: KObj): KObj {
    if (rt.kind === "CustomResourceDefinition") {
      for (const ct of this.registry.customTypes().filter((c) => c.crdName === obj.metadata.name)) {
        for (const cr of this.store.list(ct.rt)) this.store.remove(ct.rt, cr.metadata.namespace, cr.metadata.name!);
      }
      this.registry.removeCrd(obj.metadata.name!);
    }
    return this.store.remove(rt, obj.metadata.namespace, obj.metadata.name!) ?? obj;
  }

  /** POST pods/{name}/binding: the only way spec.nodeName changes after create. */
  bind(ns: string, podName: string, body: unknown, ctx: WriteCtx): StatusBody {
    const check = this.swagger.check(BINDING_DEFINITION, dropNulls(body));
    if (check.unknown.length > 0) throw badRequest(`strict decoding error: ${check.unknown.map((f) => `unknown field "${f}"`).join(", ")}`);
    if (check.causes.length > 0) throw invalid("", "Binding", podName, check.causes);
    const b = body as { metadata?: { name?: string }; target: { kind?: string; name: string } };
    if (b.metadata?.name && b.metadata.name !== podName) throw badRequest("name in the Binding does not match the pod name on the URL");
    if (b.target.kind && b.target.kind !== "Node") {
      throw invalid("", "Binding", podName, [
        { reason: "FieldValueNotSupported", field: "target.kind", message: `Unsupported value: "${b.target.kind}": supported values: "Node"` },
      ]);
    }
    const rt = builtin("pods");
    const pod = this.mustGet(rt, ns, podName);
    if (pod.metadata.deletionTimestamp) throw conflict("", "pods", podName, "pod is being deleted, cannot be assigned to a host");
    if (pod.spec?.nodeName) throw conflict("", "pods", podName, `pod ${podName} is already assigned to node "${String(pod.spec.nodeName)}"`);
    const next = structuredClone(pod);
    next.spec!.nodeName = b.target.name;
    const conds = ((next.status!.conditions ?? []) as { type: string }[]).filter((c) => c.type !== "PodScheduled");
    conds.push({ type: "PodScheduled", status: "True", lastProbeTime: null, lastTransitionTime: now() } as never);
    next.status!.conditions = conds;
    const bound = dropNulls(next) as KObj;
    this.admission.admit(rt, bound, ctx);
    this.store.put(rt, bound);
    return success(201);
  }
}
