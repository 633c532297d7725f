// The fake API server's kube-scheduler stand-in, driven through the real @kubernetes/client-node: MicroVM
// placeholder Pods are bound within node capacity, an oversized one stays Pending with kube-scheduler's message,
// node affinity and taints are honoured, and a pending Pod is retried when a node appears.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type V1Pod, Watch } from "@kubernetes/client-node";
import { podRequests } from "../fakes/kube-apiserver/scheduler.js";
import { schedulerUnits } from "../fakes/kube-apiserver/quantity.js";
import { type Kit, nodeBody, placeholderPod, startKit, until } from "../fakes/kube-apiserver/testkit.js";

let kit: Kit;
const BANGER = { labels: { "banger.dev/node": "true" }, taints: [{ key: "banger.dev/microvm", effect: "NoSchedule" }] };
const ALLOC = { cpu: "4", memory: "8Gi", pods: "110", "banger.dev/microvm": "3" };

beforeAll(async () => {
  kit = await startKit();
  for (const n of ["node-1", "node-2", "node-3"]) await kit.core.createNode({ body: nodeBody(n, ALLOC, BANGER) });
});
afterAll(async () => {
  expect(kit.server.problems()).toEqual([]);
  await kit.server.close();
});

let seq = 0;
const mvm = (name: string) => ({ metadata: { name, uid: `00000000-0000-4000-8000-${String(++seq).padStart(12, "0")}` } });
const podOf = (name: string) => kit.core.readNamespacedPod({ namespace: "default", name });
const scheduled = (p: V1Pod) => p.status?.conditions?.find((c) => c.type === "PodScheduled");

async function settle(names: string[]): Promise<V1Pod[]> {
  return until("every pod to be bound or unschedulable", async () => {
    const pods = await Promise.all(names.map(podOf));
    return pods.every((p) => scheduled(p)) ? pods : undefined;
  });
}

describe("fake kube-apiserver: scheduler stand-in", () => {
  it("binds placeholder pods within each node's allocatable, spreading by least allocation", async () => {
    // A watch like a node agent's: pods bound to node-2 only, across namespaces.
    const seen: string[] = [];
    const ctl = await new Watch(kit.kc).watch(
      "/api/v1/pods",
      { fieldSelector: "spec.nodeName=node-2" },
      (type, obj: V1Pod) => seen.push(`${type} ${obj.metadata?.name}`),
      () => undefined,
    );
    const names: string[] = [];
    for (let i = 0; i < 6; i++) {
      const p = await kit.core.createNamespacedPod({ namespace: "default", body: placeholderPod(mvm(`fit-${i}`), 1, 1024) });
      names.push(p.metadata!.name!);
    }
    const pods = await settle(names);
    expect(pods.every((p) => scheduled(p)?.status === "True" && p.spec?.nodeName)).toBe(true);
    const perNode = new Map<string, number>();
    for (const p of pods) perNode.set(p.spec!.nodeName!, (perNode.get(p.spec!.nodeName!) ?? 0) + 1);
    // Least-allocated spreads six equal pods two per node.
    expect([...perNode.values()]).toEqual([2, 2, 2]);
    await until("node-2's watcher to see its pods", () => seen.length >= 2);
    expect(seen.every((s) => s.startsWith("ADDED "))).toBe(true);
    ctl.abort();
    const events = await kit.core.listNamespacedEvent({ namespace: "default", fieldSelector: `involvedObject.name=${names[0]}` });
    expect(events.items.map((e) => e.reason)).toContain("Scheduled");
  });

  it("never binds beyond capacity: the extended resource runs out and the pod stays Pending with the reason", async () => {
    const names: string[] = [];
    for (let i = 0; i < 4; i++)
      names.push((await kit.core.createNamespacedPod({ namespace: "default", body: placeholderPod(mvm(`cap-${i}`), 1, 512) })).metadata!.name!);
    const pods = await settle(names);
    const bound = pods.filter((p) => p.spec?.nodeName);
    const pending = pods.filter((p) => !p.spec?.nodeName);
    expect(bound).toHaveLength(3);
    expect(pending).toHaveLength(1);
    expect(scheduled(pending[0])).toMatchObject({
      status: "False",
      reason: "Unschedulable",
      message: "0/3 nodes are available: 3 Insufficient banger.dev/microvm.",
    });
    expect(pending[0].status?.phase).toBe("Pending");
    // Whatever is bound fits every node's allocatable.
    const all = (await kit.core.listPodForAllNamespaces()).items;
    for (const n of ["node-1", "node-2", "node-3"]) {
      const on = all.filter((p) => p.spec?.nodeName === n);
      const sum = (k: string) => on.reduce((acc, p) => acc + (podRequests(p as never)[k] ?? 0), 0);
      for (const [k, v] of Object.entries(ALLOC)) if (k !== "pods") expect(sum(k)).toBeLessThanOrEqual(schedulerUnits(k, v));
    }
    // Capacity appears (a fourth node): the pending pod is retried and bound there.
    await kit.core.createNode({ body: nodeBody("node-4", ALLOC, BANGER) });
    const later = await until("the retry", async () => ((await podOf(pending[0].metadata!.name!)).spec?.nodeName === "node-4" ? true : undefined));
    expect(later).toBe(true);
  });

  it("leaves an oversized pod Pending with kube-scheduler's per-reason counts", async () => {
    const big = await kit.core.createNamespacedPod({ namespace: "default", body: placeholderPod(mvm("huge"), 1, 64 * 1024) });
    const [p] = await settle([big.metadata!.name!]);
    expect(scheduled(p)).toMatchObject({ status: "False", reason: "Unschedulable" });
    expect(scheduled(p)?.message).toBe("0/4 nodes are available: 3 Insufficient banger.dev/microvm, 4 Insufficient memory.");
    const warn = await kit.core.listNamespacedEvent({ namespace: "default", fieldSelector: `involvedObject.name=${p.metadata!.name}` });
    expect(warn.items.find((e) => e.reason === "FailedScheduling")?.type).toBe("Warning");
  });

  it("honours node affinity, taints, cordoned and not-ready nodes", async () => {
    await kit.core.createNode({ body: nodeBody("plain", ALLOC) });
    await kit.core.createNode({ body: nodeBody("tainted-only", ALLOC, { taints: BANGER.taints }) });
    await kit.core.createNode({ body: nodeBody("cordoned", ALLOC, { ...BANGER, unschedulable: true }) });
    await kit.core.createNode({ body: nodeBody("not-ready", ALLOC, { ...BANGER, ready: false }) });
    // No toleration and no affinity: only "plain" is feasible (the banger nodes carry the NoSchedule taint).
    const free = await kit.core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "untolerating" }, spec: { containers: [{ name: "c", image: "registry.k8s.io/pause:3.10" }] } },
    });
    const [f] = await settle([free.metadata!.name!]);
    expect(f.spec?.nodeName).toBe("plain");
    // Affinity to a label nobody has: every node's reason is counted, first failing filter per node.
    const body = placeholderPod(mvm("nowhere"), 1, 256);
    body.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions.push({
      key: "zone",
      operator: "In",
      values: ["mars"],
    });
    const nowhere = await kit.core.createNamespacedPod({ namespace: "default", body });
    const [n] = await settle([nowhere.metadata!.name!]);
    expect(scheduled(n)?.message).toBe(
      "0/8 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable, 6 node(s) didn't match Pod's node affinity/selector.",
    );
    // A pod without the banger toleration on a banger-only selector hits the taint (a node's own taints come before
    // the not-ready one the lifecycle controller appends, so not-ready reports the banger taint too).
    const noTol = await kit.core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: "no-toleration" },
        spec: { nodeSelector: { "banger.dev/node": "true" }, containers: [{ name: "c", image: "registry.k8s.io/pause:3.10" }] },
      },
    });
    const [t] = await settle([noTol.metadata!.name!]);
    expect(scheduled(t)?.message).toBe(
      "0/8 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable, 6 node(s) had untolerated taint {banger.dev/microvm: }.",
    );
  });

  it("leaves a bound pod Pending until a test sets its phase, as no kubelet runs here", async () => {
    const p = await kit.core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "phase" }, spec: { containers: [{ name: "c", image: "registry.k8s.io/pause:3.10" }] } },
    });
    const [bound] = await settle([p.metadata!.name!]);
    expect(bound.spec?.nodeName).toBe("plain");
    expect(bound.status?.phase).toBe("Pending");
    kit.server.setPodPhase("default", "phase", "Running");
    expect((await podOf("phase")).status?.phase).toBe("Running");
  });
});
