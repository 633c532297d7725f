// kube-scheduler's InterPodAffinity filter, for required pod affinity terms: a node passes when, for every
// term, its topology domain (the node's value of the term's topologyKey) holds an existing pod that matches
// all of the incoming pod's terms. The one exception is the real one: when no existing pod anywhere matches,
// and the incoming pod matches its own terms, it may go to any node that has the topology labels (the first
// pod of a group with affinity to itself). Required anti-affinity, matchLabelKeys and mismatchLabelKeys are
// not implemented: a pod that uses them is reported as a problem of the fake, never scheduled by a guess.
import { requirementMatches, type Requirement } from "./selectors.js";
import { type KObj } from "./types.js";

export type LabelSelector = { matchLabels?: Record<string, string>; matchExpressions?: Requirement[] };
type Term = {
  labelSelector?: LabelSelector | null;
  namespaces?: string[];
  namespaceSelector?: LabelSelector | null;
  topologyKey: string;
  matchLabelKeys?: string[];
  mismatchLabelKeys?: string[];
};

/** The reason kube-scheduler's InterPodAffinity plugin gives for a node that fails the pod's affinity. */
export const AFFINITY_REASON = "node(s) didn't match pod affinity rules";

/** metav1.LabelSelector: a null selector matches nothing, an empty one everything. */
export function selectorMatches(sel: LabelSelector | null | undefined, labels: Record<string, string>): boolean {
  if (!sel) return false;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  return (sel.matchExpressions ?? []).every((e) => requirementMatches(labels, e));
}

function requiredTerms(pod: KObj): Term[] {
  return (pod.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []) as Term[];
}

/** What the pod asks of inter-pod (anti-)affinity that this fake does not implement; undefined when nothing. */
export function unsupportedAffinity(pod: KObj): string | undefined {
  const anti = pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution as unknown[] | undefined;
  if (anti && anti.length > 0) return "required podAntiAffinity";
  const keys = requiredTerms(pod).find((t) => (t.matchLabelKeys ?? []).length + (t.mismatchLabelKeys ?? []).length > 0);
  return keys ? "matchLabelKeys/mismatchLabelKeys in podAffinity" : undefined;
}

/** Does `other` match the term, as a term of a pod in namespace `ns`? (namespaces and namespaceSelector are ORed) */
function termMatches(term: Term, ns: string, other: KObj, nsLabels: Map<string, Record<string, string>>): boolean {
  const otherNs = other.metadata.namespace ?? "";
  const names = term.namespaces ?? [];
  const inNs =
    names.length === 0 && !term.namespaceSelector
      ? otherNs === ns
      : names.includes(otherNs) || (term.namespaceSelector ? selectorMatches(term.namespaceSelector, nsLabels.get(otherNs) ?? {}) : false);
  return inNs && selectorMatches(term.labelSelector, other.metadata.labels ?? {});
}

/**
 * The InterPodAffinity filter for `pod` against the pods bound now (`podsByNode`, those bound earlier in the
 * same pass included, as the real scheduler's assumed pods are); undefined when the pod has no required terms.
 */
export function podAffinityFilter(
  pod: KObj,
  nodes: KObj[],
  podsByNode: Map<string, KObj[]>,
  nsLabels: Map<string, Record<string, string>>,
): ((node: KObj) => boolean) | undefined {
  const terms = requiredTerms(pod);
  if (terms.length === 0) return undefined;
  const ns = pod.metadata.namespace ?? "";
  const matchesAll = (other: KObj) => terms.every((t) => termMatches(t, ns, other, nsLabels));
  // Per topology pair (key=value), the existing pods that match every term.
  const counts = new Map<string, number>();
  for (const node of nodes) {
    const labels = node.metadata.labels ?? {};
    for (const other of podsByNode.get(node.metadata.name!) ?? []) {
      if (other.metadata.uid === pod.metadata.uid || !matchesAll(other)) continue;
      for (const t of terms) {
        if (!Object.hasOwn(labels, t.topologyKey)) continue;
        const pair = `${t.topologyKey}=${labels[t.topologyKey]}`;
        counts.set(pair, (counts.get(pair) ?? 0) + 1);
      }
    }
  }
  const firstOfGroup = counts.size === 0 && matchesAll(pod);
  return (node) => {
    const labels = node.metadata.labels ?? {};
    let podsExist = true;
    for (const t of terms) {
      // Every topology label must exist on the node, even for the first pod of a group.
      if (!Object.hasOwn(labels, t.topologyKey)) return false;
      if (!((counts.get(`${t.topologyKey}=${labels[t.topologyKey]}`) ?? 0) > 0)) podsExist = false;
    }
    return podsExist || firstOfGroup;
  };
}
