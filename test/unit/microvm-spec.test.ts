import { describe, expect, it } from "vitest";
import { peerAffinity, placeholderPod } from "../../src/adapters/k8s/objects.js";
import type { MicroVm } from "../../src/domain/microvm.js";
import { arePeers, expiresAt, peerGroup, runningSinceFor } from "../../src/domain/microvm-spec.js";

const mv = (name: string, peers?: string[], extra: Partial<MicroVm> = {}): MicroVm => ({
  namespace: "default",
  name,
  uid: `uid-${name}`,
  deleting: false,
  spec: { image: "fake-1", vcpus: 1, memoryMib: 256, ...(peers ? { peers } : {}) },
  status: {},
  ...extra,
});

describe("peerGroup", () => {
  it("is the peers a MicroVM names plus those that name it, in its namespace, sorted, without itself", () => {
    const a = mv("a", ["c", "a"]);
    const all = [a, mv("b", ["a"]), mv("c"), mv("d", ["x"]), { ...mv("e", ["a"]), namespace: "other" }];
    expect(peerGroup(a, all)).toEqual(["b", "c"]);
    // Symmetric: c is held by a's spec although its own names nobody.
    expect(peerGroup(mv("c"), all)).toEqual(["a"]);
    expect(peerGroup(mv("d", ["x"]), all)).toEqual(["x"]);
  });

  it("a MicroVM being deleted holds nobody", () => {
    expect(peerGroup(mv("c"), [mv("a", ["c"], { deleting: true })])).toEqual([]);
  });

  it("arePeers: either side's spec", () => {
    expect(arePeers(mv("a", ["b"]), mv("b"))).toBe(true);
    expect(arePeers(mv("b"), mv("a", ["b"]))).toBe(true);
    expect(arePeers(mv("a"), mv("b"))).toBe(false);
    expect(arePeers(mv("a", ["a"]), mv("a", ["a"]))).toBe(false);
  });
});

describe("time to live", () => {
  const NOW = Date.parse("2026-03-01T12:00:30Z");
  const ready = (at: string) => [{ type: "Ready", status: "True" as const, reason: "Running", message: "", lastTransitionTime: at }];

  it("records the first Running at the Ready condition's transition", () => {
    expect(runningSinceFor({ phase: "Running", conditions: ready("2026-03-01T12:00:10Z") }, NOW)).toBe("2026-03-01T12:00:10Z");
  });

  it("never later than the controller's clock (a node's clock ahead)", () => {
    expect(runningSinceFor({ phase: "Running", conditions: ready("2026-03-01T13:00:00Z") }, NOW)).toBe("2026-03-01T12:00:30Z");
    expect(runningSinceFor({ phase: "Running" }, NOW + 499)).toBe("2026-03-01T12:00:30Z");
  });

  it("records nothing before Running, nor a second time (failover, a VM that stopped)", () => {
    expect(runningSinceFor({ phase: "Creating" }, NOW)).toBeUndefined();
    expect(runningSinceFor({ phase: "Running", runningSince: "2026-03-01T11:00:00Z" }, NOW)).toBeUndefined();
    expect(runningSinceFor({ phase: "Failed", runningSince: "2026-03-01T11:00:00Z" }, NOW)).toBeUndefined();
  });

  it("expires ttlSeconds after runningSince; never without both", () => {
    const since = "2026-03-01T12:00:00Z";
    expect(expiresAt({ spec: { image: "x", vcpus: 1, memoryMib: 128, ttlSeconds: 90 }, status: { runningSince: since } })).toBe(Date.parse(since) + 90_000);
    expect(expiresAt({ spec: { image: "x", vcpus: 1, memoryMib: 128 }, status: { runningSince: since } })).toBeUndefined();
    expect(expiresAt({ spec: { image: "x", vcpus: 1, memoryMib: 128, ttlSeconds: 90 }, status: { phase: "Running" } })).toBeUndefined();
  });
});

describe("placeholder pod affinity", () => {
  it("no peers: no pod affinity at all", () => {
    expect(peerAffinity(mv("a"), [])).toBeUndefined();
    expect(placeholderPod(mv("a")).spec?.affinity?.podAffinity).toBeUndefined();
  });

  it("peers: one required term on the node, selecting the peers' placeholders and its own", () => {
    const pod = placeholderPod(mv("a", ["b"]), {}, ["b", "c"]);
    expect(pod.spec?.affinity?.podAffinity).toEqual({
      requiredDuringSchedulingIgnoredDuringExecution: [
        {
          labelSelector: { matchExpressions: [{ key: "banger.dev/microvm", operator: "In", values: ["a", "b", "c"] }] },
          topologyKey: "kubernetes.io/hostname",
        },
      ],
    });
    // Node affinity stays as it was.
    expect(pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toHaveLength(1);
    expect(pod.metadata?.labels).toEqual({ "banger.dev/microvm": "a" });
  });
});
