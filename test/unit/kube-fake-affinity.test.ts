// The fake scheduler's InterPodAffinity filter on its own: kube-scheduler's required-term semantics.
import { describe, expect, it } from "vitest";
import { podAffinityFilter, selectorMatches, unsupportedAffinity } from "../fakes/kube-apiserver/pod-affinity.js";
import { type KObj } from "../fakes/kube-apiserver/types.js";

const node = (name: string, labels: Record<string, string> = { "kubernetes.io/hostname": name }): KObj => ({ metadata: { name, labels } });
const pod = (name: string, labels: Record<string, string>, affinityTo?: string[], ns = "default"): KObj => ({
  metadata: { name, namespace: ns, uid: `uid-${name}`, labels },
  spec: affinityTo
    ? {
        affinity: {
          podAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              { labelSelector: { matchExpressions: [{ key: "app", operator: "In", values: affinityTo }] }, topologyKey: "kubernetes.io/hostname" },
            ],
          },
        },
      }
    : {},
});
const NODES = [node("a"), node("b"), node("c")];
const noNs = new Map<string, Record<string, string>>();
const feasible = (p: KObj, placed: Record<string, KObj[]>, nodes = NODES) => {
  const f = podAffinityFilter(p, nodes, new Map(Object.entries(placed)), noNs)!;
  return nodes.filter((n) => f(n)).map((n) => n.metadata.name);
};

describe("fake scheduler: InterPodAffinity (required terms)", () => {
  it("a pod without terms has no filter", () => {
    expect(podAffinityFilter(pod("x", {}), NODES, new Map(), noNs)).toBeUndefined();
  });

  it("only the nodes holding a matching pod pass", () => {
    expect(feasible(pod("web", { app: "web" }, ["db"]), { b: [pod("db", { app: "db" })], c: [pod("other", { app: "x" })] })).toEqual(["b"]);
  });

  it("the first pod of a group that matches its own term may go anywhere; one that does not match itself waits", () => {
    expect(feasible(pod("web", { app: "web" }, ["web", "db"]), {})).toEqual(["a", "b", "c"]);
    expect(feasible(pod("web", { app: "web" }, ["db"]), {})).toEqual([]);
  });

  it("the exception ends once any pod matches: the group's node only", () => {
    expect(feasible(pod("web", { app: "web" }, ["web", "db"]), { c: [pod("db", { app: "db" })] })).toEqual(["c"]);
  });

  it("a node without the topology label never passes, even for the first of a group", () => {
    const nodes = [node("a"), node("nolabel", {})];
    expect(feasible(pod("web", { app: "web" }, ["web"]), {}, nodes)).toEqual(["a"]);
  });

  it("matches pods of the pod's own namespace unless the term names others", () => {
    expect(feasible(pod("web", { app: "web" }, ["db"]), { a: [pod("db", { app: "db" }, undefined, "other")] })).toEqual([]);
    const p = pod("web", { app: "web" }, ["db"]);
    p.spec!.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].namespaces = ["other"];
    expect(feasible(p, { a: [pod("db", { app: "db" }, undefined, "other")] })).toEqual(["a"]);
  });

  it("label selectors: a null selector matches nothing, an empty one everything", () => {
    expect(selectorMatches(null, { a: "1" })).toBe(false);
    expect(selectorMatches({}, { a: "1" })).toBe(true);
    expect(selectorMatches({ matchLabels: { a: "1" }, matchExpressions: [{ key: "b", operator: "DoesNotExist" }] }, { a: "1" })).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: "a", operator: "NotIn", values: ["1"] }] }, { a: "1" })).toBe(false);
  });

  it("names what it does not implement instead of guessing", () => {
    const anti = {
      metadata: { name: "x" },
      spec: { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: "k" }] } } },
    };
    expect(unsupportedAffinity(anti)).toBe("required podAntiAffinity");
    expect(unsupportedAffinity(pod("x", {}, ["y"]))).toBeUndefined();
  });
});
