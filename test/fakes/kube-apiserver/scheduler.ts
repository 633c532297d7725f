// A stand-in for kube-scheduler: binds pending Pods to Nodes through pods/binding after the filter plugins
// NodeUnschedulable, TaintToleration (incl. the not-ready taint the node lifecycle controller puts on a node
// whose Ready condition is not True), NodeAffinity (+ nodeSelector), NodeResourcesFit and InterPodAffinity
// (required pod affinity terms, pod-affinity.ts), then picks the feasible
// node with the best NodeResourcesLeastAllocated score (ties: the first by name, where the real one picks at random).
// A Pod that fits nowhere gets PodScheduled=False/Unschedulable with the real scheduler's message, and is retried
// whenever a Pod or Node changes. Containers never run: a bound Pod stays Pending until a test sets its phase.
import { type Api } from "./api.js";
import { AFFINITY_REASON, podAffinityFilter, unsupportedAffinity } from "./pod-affinity.js";
import { builtin } from "./resources.js";
import { requirementMatches, type Requirement } from "./selectors.js";
import { schedulerUnits } from "./quantity.js";
import { ApiError } from "./status.js";
import { now } from "./strategies.js";
import { type KObj } from "./types.js";
import { type WriteCtx } from "./validate.js";

type Res = Record<string, number>;
type Taint = { key: string; value?: string; effect: string };
type Toleration = { key?: string; operator?: string; value?: string; effect?: string };

const ctx = (): WriteCtx => ({ fieldValidation: "Strict", warnings: [] });
const PODS = builtin("pods");
const NODES = builtin("nodes");
const NAMESPACES = builtin("namespaces");

export function podRequests(pod: KObj): Res {
  const out: Res = {};
  for (const c of (pod.spec?.containers ?? []) as { resources?: { requests?: Record<string, string> } }[]) {
    for (const [k, v] of Object.entries(c.resources?.requests ?? {})) out[k] = (out[k] ?? 0) + schedulerUnits(k, v);
  }
  return out;
}

function allocatable(node: KObj): Res {
  return Object.fromEntries(Object.entries((node.status?.allocatable ?? {}) as Record<string, string>).map(([k, v]) => [k, schedulerUnits(k, v)]));
}

const tolerates = (tols: Toleration[], t: Taint) =>
  tols.some(
    (tol) =>
      (!tol.effect || tol.effect === t.effect) &&
      (tol.operator === "Exists" ? !tol.key || tol.key === t.key : tol.key === t.key && (tol.value ?? "") === (t.value ?? "")),
  );

function affinityMatches(pod: KObj, node: KObj): boolean {
  const labels = node.metadata.labels ?? {};
  const sel = (pod.spec?.nodeSelector ?? {}) as Record<string, string>;
  if (!Object.entries(sel).every(([k, v]) => labels[k] === v)) return false;
  const terms = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms as
    { matchExpressions?: Requirement[]; matchFields?: Requirement[] }[] | undefined;
  if (!terms) return true;
  // Terms are ORed, expressions within a term ANDed; an empty term matches nothing.
  return terms.some((t) => {
    const exprs = t.matchExpressions ?? [];
    const fields = t.matchFields ?? [];
    if (exprs.length + fields.length === 0) return false;
    return (
      exprs.every((e) => requirementMatches(labels, e, true)) && fields.every((e) => requirementMatches({ "metadata.name": node.metadata.name! }, e, true))
    );
  });
}

/** Why the node cannot take the pod, as the filter plugins word it; empty when it fits. */
export function filter(pod: KObj, node: KObj, used: Res, podsOnNode: number): string[] {
  if (node.spec?.unschedulable && !tolerates(pod.spec?.tolerations ?? [], { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" })) {
    return ["node(s) were unschedulable"];
  }
  const taints = [...((node.spec?.taints ?? []) as Taint[])];
  const ready = ((node.status?.conditions ?? []) as { type: string; status: string }[]).find((c) => c.type === "Ready");
  if (ready?.status !== "True") taints.push({ key: "node.kubernetes.io/not-ready", effect: "NoSchedule" });
  const bad = taints.find((t) => (t.effect === "NoSchedule" || t.effect === "NoExecute") && !tolerates(pod.spec?.tolerations ?? [], t));
  if (bad) return [`node(s) had untolerated taint {${bad.key}: ${bad.value ?? ""}}`];
  if (!affinityMatches(pod, node)) return ["node(s) didn't match Pod's node affinity/selector"];
  const alloc = allocatable(node);
  const out: string[] = [];
  if (alloc.pods !== undefined && podsOnNode + 1 > alloc.pods) out.push("Too many pods");
  for (const [k, v] of Object.entries(podRequests(pod))) {
    if (v > 0 && (used[k] ?? 0) + v > (alloc[k] ?? 0)) out.push(`Insufficient ${k}`);
  }
  return out;
}

function leastAllocated(pod: KObj, node: KObj, used: Res): number {
  const alloc = allocatable(node);
  const req = podRequests(pod);
  const score = (k: string) => (alloc[k] ? ((alloc[k] - (used[k] ?? 0) - (req[k] ?? 0)) * 100) / alloc[k] : 0);
  return (score("cpu") + score("memory")) / 2;
}

/** kube-scheduler's FitError text: reasons counted over nodes, sorted, comma-joined. */
export function fitMessage(nodes: number, reasons: Map<string, number>): string {
  if (nodes === 0) return "no nodes available to schedule pods";
  const parts = [...reasons.entries()].map(([r, n]) => `${n} ${r}`).sort();
  return `0/${nodes} nodes are available: ${parts.join(", ")}.`;
}

export class Scheduler {
  private pending = false;
  private stopped = false;
  readonly errors: string[] = [];

  constructor(private readonly api: Api) {
    api.store.subscribe((c) => {
      if (c.rt.kind === "Pod" || c.rt.kind === "Node") this.kick();
    });
  }

  stop(): void {
    this.stopped = true;
  }

  kick(): void {
    if (this.pending || this.stopped) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      if (!this.stopped) this.pass();
    });
  }

  pass(): void {
    const nodes = this.api.store.list(NODES);
    const pods = this.api.store.list(PODS);
    const used = new Map<string, Res>(nodes.map((n) => [n.metadata.name!, {}]));
    const count = new Map<string, number>();
    const charge = (nodeName: string, pod: KObj) => {
      const u = used.get(nodeName);
      if (!u) return;
      for (const [k, v] of Object.entries(podRequests(pod))) u[k] = (u[k] ?? 0) + v;
      count.set(nodeName, (count.get(nodeName) ?? 0) + 1);
    };
    const live = pods.filter((p) => p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed");
    // The pods on each node, as InterPodAffinity sees them; a pod bound in this pass joins its node at once.
    const onNode = new Map<string, KObj[]>();
    const place = (nodeName: string, pod: KObj) => onNode.set(nodeName, [...(onNode.get(nodeName) ?? []), pod]);
    for (const p of live) {
      if (!p.spec?.nodeName) continue;
      charge(p.spec.nodeName as string, p);
      place(p.spec.nodeName as string, p);
    }
    const nsLabels = new Map(this.api.store.list(NAMESPACES).map((n) => [n.metadata.name!, n.metadata.labels ?? {}]));
    const queue = live
      .filter(
        (p) => !p.spec?.nodeName && p.spec?.schedulerName === "default-scheduler" && !p.metadata.deletionTimestamp && !(p.spec?.schedulingGates ?? []).length,
      )
      .sort(
        (a, b) =>
          (b.spec?.priority ?? 0) - (a.spec?.priority ?? 0) ||
          String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)) ||
          Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion),
      );
    for (const pod of queue) {
      const unsupported = unsupportedAffinity(pod);
      if (unsupported) {
        const what = `${unsupported} (pod ${pod.metadata.namespace}/${pod.metadata.name}) is not implemented by the fake scheduler`;
        if (!this.errors.includes(what)) this.errors.push(what);
        continue;
      }
      const affinity = podAffinityFilter(pod, nodes, onNode, nsLabels);
      const reasons = new Map<string, number>();
      let best: { node: KObj; score: number } | undefined;
      for (const node of nodes) {
        const why = filter(pod, node, used.get(node.metadata.name!)!, count.get(node.metadata.name!) ?? 0);
        // InterPodAffinity runs after the plugins above; a node they reject is not asked.
        if (why.length === 0 && affinity && !affinity(node)) why.push(AFFINITY_REASON);
        for (const r of why) reasons.set(r, (reasons.get(r) ?? 0) + 1);
        if (why.length > 0) continue;
        const score = leastAllocated(pod, node, used.get(node.metadata.name!)!);
        if (!best || score > best.score) best = { node, score };
      }
      if (best) {
        const target = best.node.metadata.name!;
        this.attempt(() =>
          this.api.bind(
            pod.metadata.namespace!,
            pod.metadata.name!,
            { metadata: { name: pod.metadata.name }, target: { apiVersion: "v1", kind: "Node", name: target } },
            ctx(),
          ),
        );
        charge(target, pod);
        place(target, { ...pod, spec: { ...pod.spec, nodeName: target } });
        this.event(pod, "Normal", "Scheduled", `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${target}`);
      } else {
        this.unschedulable(pod, fitMessage(nodes.length, reasons));
      }
    }
  }

  private unschedulable(pod: KObj, message: string): void {
    const cond = ((pod.status?.conditions ?? []) as { type: string; message?: string }[]).find((c) => c.type === "PodScheduled");
    if (cond?.message === message) return;
    const conditions = ((pod.status?.conditions ?? []) as { type: string }[]).filter((c) => c.type !== "PodScheduled");
    conditions.push({ type: "PodScheduled", status: "False", reason: "Unschedulable", message, lastProbeTime: null, lastTransitionTime: now() } as never);
    this.attempt(() => this.api.update(PODS, pod.metadata.namespace, pod.metadata.name!, { ...pod, status: { ...pod.status, conditions } }, ctx(), "status"));
    this.event(pod, "Warning", "FailedScheduling", message);
  }

  private event(pod: KObj, type: string, reason: string, message: string): void {
    const t = now();
    const body = {
      metadata: { generateName: `${pod.metadata.name}.`, namespace: pod.metadata.namespace },
      involvedObject: { apiVersion: "v1", kind: "Pod", namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid },
      reason,
      message,
      type,
      source: { component: "default-scheduler" },
      reportingComponent: "default-scheduler",
      firstTimestamp: t,
      lastTimestamp: t,
      count: 1,
    };
    this.attempt(() => this.api.create(builtin("events"), pod.metadata.namespace, body, ctx()));
  }

  private attempt(fn: () => unknown): void {
    try {
      fn();
    } catch (e) {
      // A pod deleted or rewritten between the list and the write is picked up by the next pass.
      if (e instanceof ApiError && (e.code === 404 || e.code === 409)) return;
      this.errors.push((e as Error).message);
    }
  }
}
