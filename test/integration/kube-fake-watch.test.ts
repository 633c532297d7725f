// Watches on the fake Kubernetes API server through the real @kubernetes/client-node Watch and informer:
// resume from a resourceVersion, bookmarks, 410 Gone after compaction, and the informer's relist on it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADD, CONNECT, DELETE, ERROR, type V1Pod, Watch, makeInformer } from "@kubernetes/client-node";
import { type Kit, mergePatch, startKit, until } from "../fakes/kube-apiserver/testkit.js";

let kit: Kit;
beforeAll(async () => {
  kit = await startKit({ scheduler: false, historyLimit: 200 });
});
afterAll(async () => {
  expect(kit.server.problems()).toEqual([]);
  await kit.server.close();
});

const pod = (name: string, labels: Record<string, string> = {}): V1Pod => ({
  metadata: { name, labels },
  spec: { containers: [{ name: "pause", image: "registry.k8s.io/pause:3.10" }] },
});

interface Seen {
  events: { type: string; name?: string; rv?: string; code?: number; message?: string }[];
  done: Promise<unknown>;
  abort: () => void;
}

async function watch(path: string, params: Record<string, string | boolean | number>): Promise<Seen> {
  const events: Seen["events"] = [];
  let finish!: (e: unknown) => void;
  const done = new Promise((ok) => (finish = ok));
  const ctl = await new Watch(kit.kc).watch(
    path,
    params,
    (type, obj: { metadata?: { name?: string; resourceVersion?: string }; code?: number; message?: string }) =>
      events.push({ type, name: obj.metadata?.name, rv: obj.metadata?.resourceVersion, code: obj.code, message: obj.message }),
    (err) => finish(err ?? "closed"),
  );
  return { events, done, abort: () => ctl.abort() };
}

describe("fake kube-apiserver: watch", () => {
  it("streams changes after a list's resourceVersion and resumes from any retained one", async () => {
    const list = await kit.core.listNamespacedPod({ namespace: "default" });
    const from = list.metadata!.resourceVersion!;
    const w = await watch("/api/v1/namespaces/default/pods", { resourceVersion: from });
    const a = await kit.core.createNamespacedPod({ namespace: "default", body: pod("w-a") });
    const a2 = await kit.core.patchNamespacedPod({ namespace: "default", name: "w-a", body: { metadata: { labels: { x: "1" } } } }, mergePatch);
    await kit.core.deleteNamespacedPod({ namespace: "default", name: "w-a" });
    await until("three events", () => w.events.length >= 3);
    expect(w.events.map((e) => [e.type, e.name])).toEqual([
      ["ADDED", "w-a"],
      ["MODIFIED", "w-a"],
      ["DELETED", "w-a"],
    ]);
    const rvs = w.events.map((e) => Number(e.rv));
    expect(rvs).toEqual([...rvs].sort((x, y) => x - y));
    w.abort();
    // Resuming from the ADDED event's resourceVersion replays only what came after it.
    const r = await watch("/api/v1/namespaces/default/pods", { resourceVersion: a.metadata!.resourceVersion! });
    await until("the replay", () => r.events.length >= 2);
    expect(r.events.map((e) => [e.type, e.rv])).toEqual([
      ["MODIFIED", a2.metadata!.resourceVersion],
      ["DELETED", r.events[1].rv],
    ]);
    r.abort();
  });

  it("turns label changes into ADDED/DELETED for a selector's watcher", async () => {
    await kit.core.createNamespacedPod({ namespace: "default", body: pod("sel-w", { role: "a" }) });
    const w = await watch("/api/v1/namespaces/default/pods", { labelSelector: "role=b" });
    await kit.core.patchNamespacedPod({ namespace: "default", name: "sel-w", body: { metadata: { labels: { role: "b" } } } }, mergePatch);
    await kit.core.patchNamespacedPod({ namespace: "default", name: "sel-w", body: { metadata: { labels: { role: "c" } } } }, mergePatch);
    await until("two events", () => w.events.length >= 2);
    expect(w.events.map((e) => e.type)).toEqual(["ADDED", "DELETED"]);
    w.abort();
  });

  it("sends BOOKMARK events carrying only the current resourceVersion when asked", async () => {
    const w = await watch("/api/v1/namespaces/default/pods", { resourceVersion: String(kit.server.store.revision), allowWatchBookmarks: true });
    await kit.core.createNamespacedPod({ namespace: "default", body: pod("bm") });
    await until("the ADDED event", () => w.events.length >= 1);
    kit.server.watches.bookmarkAll();
    await until("a bookmark", () => w.events.some((e) => e.type === "BOOKMARK"));
    const bm = w.events.find((e) => e.type === "BOOKMARK")!;
    expect(bm.rv).toBe(String(kit.server.store.revision));
    const plain = await watch("/api/v1/namespaces/default/pods", { resourceVersion: String(kit.server.store.revision) });
    kit.server.watches.bookmarkAll();
    await kit.core.createNamespacedPod({ namespace: "default", body: pod("bm2") });
    await until("the ADDED event", () => plain.events.length >= 1);
    expect(plain.events.map((e) => e.type)).toEqual(["ADDED"]);
    w.abort();
    plain.abort();
  });

  it("ends a watch after timeoutSeconds, as the real server does", async () => {
    const w = await watch("/api/v1/namespaces/default/pods", { resourceVersion: String(kit.server.store.revision), timeoutSeconds: 1 });
    expect(await w.done).toBe("closed");
    expect(w.events).toEqual([]);
    expect(kit.server.watches.count).toBe(0);
  });

  it("answers a watch from a compacted resourceVersion with an ERROR event, Status 410, and ends it", async () => {
    const before = (await kit.core.listNamespacedPod({ namespace: "default" })).metadata!.resourceVersion!;
    await kit.core.createNamespacedPod({ namespace: "default", body: pod("old-1") });
    kit.server.compact();
    const w = await watch("/api/v1/namespaces/default/pods", { resourceVersion: before });
    expect(await w.done).toBe("closed");
    expect(w.events).toHaveLength(1);
    expect(w.events[0]).toMatchObject({ type: "ERROR", code: 410 });
    expect(w.events[0].message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
  });

  it("lets the informer relist after a 410 and converge on the true state", async () => {
    let lists = 0;
    const path = "/api/v1/namespaces/default/pods";
    const informer = makeInformer(kit.kc, path, () => (lists++, kit.core.listNamespacedPod({ namespace: "default", labelSelector: "inf=1" })), "inf=1");
    const added: string[] = [];
    const deleted: string[] = [];
    const errors: unknown[] = [];
    let connects = 0;
    informer.on(ADD, (p) => added.push(p.metadata!.name!));
    informer.on(DELETE, (p) => deleted.push(p.metadata!.name!));
    informer.on(ERROR, (e) => errors.push(e));
    informer.on(CONNECT, () => connects++);
    await kit.core.createNamespacedPod({ namespace: "default", body: pod("inf-keep", { inf: "1" }) });
    await kit.core.createNamespacedPod({ namespace: "default", body: pod("inf-gone", { inf: "1" }) });
    await informer.start();
    await until("the informer's watch", () => kit.server.watches.count > 0 && added.length === 2);
    // While the informer is cut off: a pod goes, a pod comes, and the history it would resume from is compacted.
    kit.server.watches.closeAll();
    kit.server.api.delete(kit.server.api.registry.find("", "v1", "pods")!, "default", "inf-gone", {});
    await kit.core.createNamespacedPod({ namespace: "default", body: pod("inf-new", { inf: "1" }) });
    kit.server.compact();
    await until("the relist", () => lists >= 2 && deleted.includes("inf-gone") && added.includes("inf-new"));
    expect(
      informer
        .list()
        .map((p) => p.metadata!.name)
        .sort(),
    ).toEqual(["inf-keep", "inf-new"]);
    expect(connects).toBeGreaterThanOrEqual(2);
    expect(errors).toEqual([]);
    await informer.stop();
  });
});
