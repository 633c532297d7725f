// Per-kind behaviour on create and update, after the real registry strategies: what the server fills in (pod
// defaults, CRD conditions), what a write may not change (a pod's spec, status outside /status).
import { type KObj, type ResourceType, canonical } from "./types.js";
import { forbidden } from "./validate.js";

export const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

function qosClass(pod: KObj): string {
  const cs = (pod.spec?.containers ?? []) as { resources?: { requests?: Record<string, string>; limits?: Record<string, string> } }[];
  const any = cs.some((c) => Object.keys(c.resources?.requests ?? {}).length + Object.keys(c.resources?.limits ?? {}).length > 0);
  if (!any) return "BestEffort";
  const guaranteed = cs.every((c) => {
    const l = c.resources?.limits ?? {};
    const r = c.resources?.requests ?? {};
    return ["cpu", "memory"].every((k) => l[k] !== undefined && (r[k] === undefined || r[k] === l[k]));
  });
  return guaranteed ? "Guaranteed" : "Burstable";
}

/** Defaulting done by the real API server (SetDefaults_Pod and friends, DefaultTolerationSeconds admission). */
function defaultPod(pod: KObj): void {
  const spec = pod.spec!;
  spec.restartPolicy ??= "Always";
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= "ClusterFirst";
  spec.schedulerName ??= "default-scheduler";
  spec.securityContext ??= {};
  spec.enableServiceLinks ??= true;
  spec.priority ??= 0;
  spec.preemptionPolicy ??= "PreemptLowerPriority";
  for (const c of spec.containers as Record<string, any>[]) {
    const tag = String(c.image).split("/").pop()!;
    c.imagePullPolicy ??= tag.includes(":") && !tag.endsWith(":latest") ? "IfNotPresent" : "Always";
    c.terminationMessagePath ??= "/dev/termination-log";
    c.terminationMessagePolicy ??= "File";
    c.resources ??= {};
    // Requests default to limits where only limits are given (what the scheduler then counts).
    if (c.resources.limits) c.resources.requests = { ...c.resources.limits, ...(c.resources.requests ?? {}) };
  }
  const tolerations = (spec.tolerations ??= []) as { key?: string; effect?: string }[];
  for (const key of ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]) {
    if (!tolerations.some((t) => t.key === key && (t.effect ?? "NoExecute") === "NoExecute")) {
      tolerations.push({ key, operator: "Exists", effect: "NoExecute", tolerationSeconds: 300 } as never);
    }
  }
}

/** Fills in what a create gets from the server's strategy; metadata (uid, timestamps) is the caller's. */
export function prepareForCreate(rt: ResourceType, obj: KObj): void {
  if (rt.kind === "Pod") {
    defaultPod(obj);
    obj.status = { phase: "Pending", qosClass: qosClass(obj) };
  } else if (rt.kind === "Namespace") {
    obj.spec = { finalizers: ["kubernetes"], ...(obj.spec ?? {}) };
    obj.status = { phase: "Active" };
    obj.metadata.labels = { ...(obj.metadata.labels ?? {}), "kubernetes.io/metadata.name": obj.metadata.name! };
  } else if (rt.kind === "CustomResourceDefinition") {
    const names = obj.spec!.names as Record<string, unknown>;
    obj.spec!.names = { singular: String(names.kind).toLowerCase(), listKind: `${String(names.kind)}List`, ...names };
    const t = now();
    obj.status = {
      acceptedNames: obj.spec!.names,
      storedVersions: (obj.spec!.versions as { name: string; storage: boolean }[]).filter((v) => v.storage).map((v) => v.name),
      conditions: [
        { type: "NamesAccepted", status: "True", reason: "NoConflicts", message: "no conflicts found", lastTransitionTime: t },
        { type: "Established", status: "True", reason: "InitialNamesAccepted", message: "the initial names have been accepted", lastTransitionTime: t },
      ],
    };
  } else if (rt.statusSubresource && rt.kind !== "Node") {
    // Custom resources with a status subresource drop status on create; the Node keeps what the kubelet registers.
    delete obj.status;
  }
}

const strip = (v: unknown) => canonical(v ?? null);

/** The fields of a pod's spec a normal update may change, per ValidatePodUpdate. */
function podSpecChangeAllowed(oldSpec: Record<string, any>, newSpec: Record<string, any>): boolean {
  const norm = (s: Record<string, any>) => {
    const c = structuredClone(s);
    for (const k of ["containers", "initContainers"]) for (const x of c[k] ?? []) delete x.image;
    delete c.activeDeadlineSeconds;
    delete c.tolerations;
    delete c.schedulingGates;
    return c;
  };
  if (strip(norm(oldSpec)) !== strip(norm(newSpec))) return false;
  // Tolerations may only be added to.
  const oldTol = (oldSpec.tolerations ?? []).map(strip) as string[];
  const newTol = new Set((newSpec.tolerations ?? []).map(strip) as string[]);
  return oldTol.every((t) => newTol.has(t));
}

/**
 * Shapes an update: next is what the client sent (already merged for a patch), old what is stored.
 * sub "status" keeps everything but status; a main-resource write keeps status where /status exists.
 */
export function prepareForUpdate(rt: ResourceType, old: KObj, next: KObj, sub: "status" | undefined): KObj {
  let out: KObj;
  if (sub === "status") {
    out = structuredClone(old);
    out.status = next.status;
  } else {
    out = next;
    if (rt.statusSubresource) out.status = structuredClone(old.status);
    if (rt.kind === "Pod" && !podSpecChangeAllowed(old.spec ?? {}, out.spec ?? {})) {
      throw forbidden(
        rt,
        old.metadata.name!,
        "spec",
        "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)",
      );
    }
  }
  // Identity and lifecycle metadata belong to the server.
  for (const k of ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "name", "namespace"] as const) {
    if (old.metadata[k] === undefined) delete out.metadata[k];
    else out.metadata[k] = old.metadata[k] as never;
  }
  const specChanged = strip({ ...old, metadata: undefined, status: undefined }) !== strip({ ...out, metadata: undefined, status: undefined });
  if (specChanged && sub !== "status") out.metadata.generation = (old.metadata.generation ?? 1) + 1;
  if (old.metadata.deletionTimestamp) {
    const before = new Set(old.metadata.finalizers ?? []);
    const added = (out.metadata.finalizers ?? []).filter((f) => !before.has(f));
    if (added.length > 0) throw forbidden(rt, old.metadata.name!, "metadata.finalizers", "no new finalizers can be added if the object is being deleted");
  }
  return out;
}
