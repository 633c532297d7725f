// The fake Kubernetes API server (test/fakes/kube-apiserver) driven by the real @kubernetes/client-node:
// CRUD verbs, optimistic concurrency, strict schema checks from Kubernetes' OpenAPI document, the status
// subresource, patches, finalizers and ownerReference garbage collection.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiextensionsV1Api, type V1CustomResourceDefinition, type V1Pod, Watch, loadYaml } from "@kubernetes/client-node";
import {
  MICROVM_CRD,
  MVM,
  type Kit,
  jsonPatch,
  mergePatch,
  nodeBody,
  placeholderPod,
  raw,
  rejection,
  startKit,
  strategicPatch,
  until,
} from "../fakes/kube-apiserver/testkit.js";

let kit: Kit;
beforeAll(async () => {
  // No scheduler here: these tests look at the API verbs alone.
  kit = await startKit({ scheduler: false });
});
afterAll(async () => {
  expect(kit.server.problems()).toEqual([]);
  await kit.server.close();
});

const pause = (name: string): V1Pod => ({ metadata: { name }, spec: { containers: [{ name: "pause", image: "registry.k8s.io/pause:3.10" }] } });

describe("fake kube-apiserver: verbs against the real client", () => {
  it("creates with server-set metadata, generateName, and a global increasing resourceVersion", async () => {
    const a = await kit.core.createNamespacedPod({ namespace: "default", body: pause("rv-a") });
    const b = await kit.core.createNamespacedPod({ namespace: "default", body: { ...pause(""), metadata: { generateName: "rv-b-" } } });
    expect(a.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(a.metadata?.generation).toBe(1);
    expect(b.metadata?.name).toMatch(/^rv-b-[a-z0-9]{5}$/);
    expect(Number(b.metadata?.resourceVersion)).toBeGreaterThan(Number(a.metadata?.resourceVersion));
    expect(a.spec?.schedulerName).toBe("default-scheduler");
    expect(a.status?.phase).toBe("Pending");
    const dup = await rejection(kit.core.createNamespacedPod({ namespace: "default", body: pause("rv-a") }));
    expect(dup.code).toBe(409);
    expect(dup.body.reason).toBe("AlreadyExists");
    const missingNs = await rejection(kit.core.createNamespacedPod({ namespace: "nowhere", body: pause("x") }));
    expect(missingNs.code).toBe(404);
    expect(missingNs.body.message).toBe('namespaces "nowhere" not found');
  });

  it("answers 409 Conflict with a metav1.Status on an update from a stale resourceVersion", async () => {
    const pod = await kit.core.createNamespacedPod({ namespace: "default", body: pause("stale") });
    const fresh = await kit.core.replaceNamespacedPod({
      name: "stale",
      namespace: "default",
      body: { ...pod, metadata: { ...pod.metadata, labels: { a: "1" } } },
    });
    expect(fresh.metadata?.labels).toEqual({ a: "1" });
    const err = await rejection(
      kit.core.replaceNamespacedPod({ name: "stale", namespace: "default", body: { ...pod, metadata: { ...pod.metadata, labels: { a: "2" } } } }),
    );
    expect(err.code).toBe(409);
    expect(err.body).toMatchObject({ kind: "Status", status: "Failure", reason: "Conflict", code: 409 });
    expect(err.body.message).toBe(
      'Operation cannot be fulfilled on pods "stale": the object has been modified; please apply your changes to the latest version and try again',
    );
    // A write that changes nothing keeps the resourceVersion, as the real server does.
    const again = await kit.core.replaceNamespacedPod({ name: "stale", namespace: "default", body: fresh });
    expect(again.metadata?.resourceVersion).toBe(fresh.metadata?.resourceVersion);
  });

  it("rejects what the real schema rejects: unknown fields 400, invalid values 422, and keeps the pod spec immutable", async () => {
    const unknown = await raw(kit, "POST", "/api/v1/namespaces/default/pods", { ...pause("u"), spec: { ...pause("u").spec!, bogus: true } });
    expect(unknown.code).toBe(400);
    expect(unknown.body.message).toContain('unknown field "spec.bogus"');
    const noImage = await rejection(
      kit.core.createNamespacedPod({ namespace: "default", body: { metadata: { name: "noimg" }, spec: { containers: [{ name: "c" }] } } }),
    );
    expect(noImage.code).toBe(422);
    expect(noImage.body.reason).toBe("Invalid");
    expect(noImage.body.details.causes).toContainEqual({ reason: "FieldValueRequired", message: "Required value", field: "spec.containers[0].image" });
    const badQty = await rejection(
      kit.core.createNamespacedPod({
        namespace: "default",
        body: { metadata: { name: "q" }, spec: { containers: [{ name: "c", image: "x", resources: { requests: { memory: "12 parsecs" } } }] } },
      }),
    );
    expect(badQty.code).toBe(422);
    expect(badQty.body.details.causes[0].field).toBe("spec.containers[0].resources.requests[memory]");
    const badName = await rejection(kit.core.createNamespacedPod({ namespace: "default", body: pause("Not_A_Name") }));
    expect(badName.code).toBe(422);
    await kit.core.createNamespacedPod({ namespace: "default", body: pause("immut") });
    const moved = await rejection(kit.core.patchNamespacedPod({ name: "immut", namespace: "default", body: { spec: { nodeName: "elsewhere" } } }, mergePatch));
    expect(moved.code).toBe(422);
    expect(moved.body.message).toContain("pod updates may not change fields");
    // fieldValidation=Warn drops the unknown field instead and says so in a Warning header, as the real server does.
    const warned = await raw(kit, "POST", "/api/v1/namespaces/default/pods?fieldValidation=Warn", {
      ...pause("ign"),
      spec: { ...pause("ign").spec!, bogus: 1 },
    });
    expect(warned.code).toBe(201);
    expect(warned.body.spec.bogus).toBeUndefined();
    expect(warned.headers.get("warning")).toBe('299 - "unknown field \\"spec.bogus\\""');
  });

  it("patches with merge, strategic merge (lists by merge key) and JSON patch", async () => {
    await kit.core.createNamespacedPod({
      namespace: "default",
      body: { ...pause("patch"), metadata: { name: "patch", labels: { keep: "1", drop: "1" }, finalizers: ["a.example/x"] } },
    });
    let p = await kit.core.patchNamespacedPod({ name: "patch", namespace: "default", body: { metadata: { labels: { drop: null, add: "2" } } } }, mergePatch);
    expect(p.metadata?.labels).toEqual({ keep: "1", add: "2" });
    p = await kit.core.patchNamespacedPod(
      {
        name: "patch",
        namespace: "default",
        body: { metadata: { finalizers: ["b.example/y"] }, spec: { containers: [{ name: "pause", image: "registry.k8s.io/pause:3.9" }] } },
      },
      strategicPatch,
    );
    expect(p.metadata?.finalizers).toEqual(["a.example/x", "b.example/y"]);
    expect(p.spec?.containers.map((c) => [c.name, c.image])).toEqual([["pause", "registry.k8s.io/pause:3.9"]]);
    p = await kit.core.patchNamespacedPod(
      {
        name: "patch",
        namespace: "default",
        body: [
          { op: "replace", path: "/metadata/finalizers", value: [] },
          { op: "add", path: "/metadata/annotations", value: { n: "1" } },
        ],
      },
      jsonPatch,
    );
    expect(p.metadata?.finalizers ?? []).toEqual([]);
    expect(p.metadata?.annotations).toEqual({ n: "1" });
    const failedTest = await rejection(
      kit.core.patchNamespacedPod({ name: "patch", namespace: "default", body: [{ op: "test", path: "/metadata/name", value: "other" }] }, jsonPatch),
    );
    expect(failedTest.code).toBe(422);
  });

  it("lists with label and field selectors and pages with limit/continue", async () => {
    for (const n of ["sel-1", "sel-2", "sel-3"])
      await kit.core.createNamespacedPod({ namespace: "default", body: { ...pause(n), metadata: { name: n, labels: { app: "sel", idx: n } } } });
    const sel = await kit.core.listNamespacedPod({ namespace: "default", labelSelector: "app=sel,idx notin (sel-2)" });
    expect(sel.items.map((p) => p.metadata?.name)).toEqual(["sel-1", "sel-3"]);
    const all = await kit.core.listPodForAllNamespaces({ fieldSelector: "metadata.name=sel-2" });
    expect(all.items.map((p) => p.metadata?.name)).toEqual(["sel-2"]);
    const page1 = await kit.core.listNamespacedPod({ namespace: "default", labelSelector: "app=sel", limit: 2 });
    expect(page1.items).toHaveLength(2);
    expect(page1.metadata?.remainingItemCount).toBe(1);
    const page2 = await kit.core.listNamespacedPod({ namespace: "default", labelSelector: "app=sel", limit: 2, _continue: page1.metadata?._continue });
    expect(page2.items.map((p) => p.metadata?.name)).toEqual(["sel-3"]);
    const badField = await rejection(kit.core.listPodForAllNamespaces({ fieldSelector: "spec.bogus=1" }));
    expect(badField.code).toBe(400);
  });
});

describe("fake kube-apiserver: custom resources, status, finalizers, garbage collection", () => {
  beforeAll(async () => {
    // loadYaml turns a manifest into the client's typed model (x-kubernetes-* keys become its camelCase fields).
    const body = loadYaml<V1CustomResourceDefinition>(JSON.stringify(MICROVM_CRD));
    const crd = await kit.kc.makeApiClient(ApiextensionsV1Api).createCustomResourceDefinition({ body });
    expect(crd.status?.conditions?.find((c) => c.type === "Established")?.status).toBe("True");
  });

  it("refuses a CRD the real server refuses", async () => {
    const wrongName = { ...MICROVM_CRD, metadata: { name: "vms.banger.dev" } };
    const r = await raw(kit, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", wrongName);
    expect(r.code).toBe(422);
    expect(r.body.details.causes[0].field).toBe("metadata.name");
    const noSpec = await raw(kit, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", { metadata: { name: "x.banger.dev" } });
    expect(noSpec.code).toBe(422);
  });

  it("watches custom resources like built-ins", async () => {
    const events: string[] = [];
    const ctl = await new Watch(kit.kc).watch(
      "/apis/banger.dev/v1alpha1/namespaces/default/microvms",
      { resourceVersion: String(kit.server.store.revision) },
      (type, obj: { kind?: string; metadata?: { name?: string } }) => events.push(`${type} ${obj.kind} ${obj.metadata?.name}`),
      () => undefined,
    );
    await kit.custom.createNamespacedCustomObject({
      ...MVM,
      namespace: "default",
      body: { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", metadata: { name: "watched" }, spec: { image: "x" } },
    });
    await kit.custom.patchNamespacedCustomObjectStatus({ ...MVM, namespace: "default", name: "watched", body: { status: { phase: "Running" } } }, mergePatch);
    await until("two events", () => events.length >= 2);
    expect(events).toEqual(["ADDED MicroVM watched", "MODIFIED MicroVM watched"]);
    ctl.abort();
  });

  it("serves the CRD's resource with defaults, and rejects what its openAPIV3Schema rejects", async () => {
    const mvm = (await kit.custom.createNamespacedCustomObject({
      ...MVM,
      namespace: "default",
      body: { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", metadata: { name: "d1" }, spec: { image: "debian", extra: { anything: 1 } } },
    })) as any;
    expect(mvm.spec).toEqual({ image: "debian", vcpus: 1, memoryMib: 512, extra: { anything: 1 } });
    const unknown = await rejection(
      kit.custom.createNamespacedCustomObject({
        ...MVM,
        namespace: "default",
        body: { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", metadata: { name: "d2" }, spec: { image: "x", gpus: 1 } },
      }),
    );
    expect(unknown.code).toBe(400);
    expect(unknown.body.message).toContain('unknown field "spec.gpus"');
    const invalid = await rejection(
      kit.custom.createNamespacedCustomObject({
        ...MVM,
        namespace: "default",
        body: { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", metadata: { name: "d3" }, spec: { image: "x", vcpus: 0 } },
      }),
    );
    expect(invalid.code).toBe(422);
    expect(invalid.body.details.causes[0].field).toBe("spec.vcpus");
    const noRv = await rejection(
      kit.custom.replaceNamespacedCustomObject({ ...MVM, namespace: "default", name: "d1", body: { ...mvm, metadata: { name: "d1" } } }),
    );
    expect(noRv.code).toBe(422);
  });

  it("keeps status out of normal writes and spec out of /status writes", async () => {
    const created = (await kit.custom.createNamespacedCustomObject({
      ...MVM,
      namespace: "default",
      body: { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", metadata: { name: "st" }, spec: { image: "debian" }, status: { phase: "Running" } },
    })) as any;
    expect(created.status).toBeUndefined();
    const st = (await kit.custom.patchNamespacedCustomObjectStatus(
      { ...MVM, namespace: "default", name: "st", body: { status: { phase: "Placed", node: "n1" }, spec: { image: "changed" } } },
      mergePatch,
    )) as any;
    expect(st.status).toEqual({ phase: "Placed", node: "n1" });
    expect(st.spec.image).toBe("debian");
    expect(st.metadata.generation).toBe(1);
    const main = (await kit.custom.patchNamespacedCustomObject(
      { ...MVM, namespace: "default", name: "st", body: { status: { phase: "Failed" }, spec: { vcpus: 2 } } },
      mergePatch,
    )) as any;
    expect(main.status.phase).toBe("Placed");
    expect(main.metadata.generation).toBe(2);
    const badStatus = await rejection(
      kit.custom.patchNamespacedCustomObjectStatus({ ...MVM, namespace: "default", name: "st", body: { status: { phase: "Exploded" } } }, mergePatch),
    );
    expect(badStatus.code).toBe(422);
    const ssp = await rejection(
      kit.custom.patchNamespacedCustomObject({ ...MVM, namespace: "default", name: "st", body: { spec: { vcpus: 3 } } }, strategicPatch),
    );
    expect(ssp.code).toBe(415);
  });

  it("holds an object with finalizers until they are removed", async () => {
    await kit.custom.createNamespacedCustomObject({
      ...MVM,
      namespace: "default",
      body: { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", metadata: { name: "fin", finalizers: ["banger.dev/vm"] }, spec: { image: "x" } },
    });
    const deleting = (await kit.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name: "fin" })) as any;
    expect(deleting.metadata.deletionTimestamp).toBeTruthy();
    const still = (await kit.custom.getNamespacedCustomObject({ ...MVM, namespace: "default", name: "fin" })) as any;
    expect(still.metadata.finalizers).toEqual(["banger.dev/vm"]);
    const more = await rejection(
      kit.custom.patchNamespacedCustomObject(
        { ...MVM, namespace: "default", name: "fin", body: { metadata: { finalizers: ["banger.dev/vm", "x.example/y"] } } },
        mergePatch,
      ),
    );
    expect(more.code).toBe(422);
    await kit.custom.patchNamespacedCustomObject({ ...MVM, namespace: "default", name: "fin", body: { metadata: { finalizers: null } } }, mergePatch);
    const gone = await rejection(kit.custom.getNamespacedCustomObject({ ...MVM, namespace: "default", name: "fin" }));
    expect(gone.code).toBe(404);
  });

  it("garbage-collects the placeholder Pod when its MicroVM is deleted (background), and waits in foreground", async () => {
    const mk = async (name: string) =>
      (await kit.custom.createNamespacedCustomObject({
        ...MVM,
        namespace: "default",
        body: { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", metadata: { name }, spec: { image: "x" } },
      })) as any;
    const bg = await mk("gc-bg");
    await kit.core.createNamespacedPod({ namespace: "default", body: placeholderPod(bg, 1, 256) });
    await kit.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name: "gc-bg" });
    await until(
      "the placeholder pod to be collected",
      async () => (await rejection(kit.core.readNamespacedPod({ namespace: "default", name: "microvm-gc-bg" }))).code === 404,
    );

    // Foreground: the owner stays (deletionTimestamp, foregroundDeletion) while a blocking dependent has a finalizer.
    const fg = await mk("gc-fg");
    const pod = placeholderPod(fg, 1, 256);
    await kit.core.createNamespacedPod({ namespace: "default", body: { ...pod, metadata: { ...pod.metadata, finalizers: ["banger.dev/vm"] } } });
    await kit.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name: "gc-fg", propagationPolicy: "Foreground" });
    const dep = await until("the dependent to be marked for deletion", async () => {
      const p = await kit.core.readNamespacedPod({ namespace: "default", name: "microvm-gc-fg" });
      return p.metadata?.deletionTimestamp ? p : undefined;
    });
    expect(dep.metadata?.finalizers).toContain("banger.dev/vm");
    const owner = (await kit.custom.getNamespacedCustomObject({ ...MVM, namespace: "default", name: "gc-fg" })) as any;
    expect(owner.metadata.finalizers).toEqual(["foregroundDeletion"]);
    await kit.core.patchNamespacedPod({ namespace: "default", name: "microvm-gc-fg", body: { metadata: { finalizers: null } } }, mergePatch);
    await until(
      "the owner to go once its blocking dependent is gone",
      async () => (await rejection(kit.custom.getNamespacedCustomObject({ ...MVM, namespace: "default", name: "gc-fg" }))).code === 404,
    );

    // Orphan: the dependent loses its owner reference and stays.
    const or = await mk("gc-or");
    await kit.core.createNamespacedPod({ namespace: "default", body: placeholderPod(or, 1, 256) });
    await kit.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name: "gc-or", propagationPolicy: "Orphan" });
    await until(
      "the owner to go after orphaning",
      async () => (await rejection(kit.custom.getNamespacedCustomObject({ ...MVM, namespace: "default", name: "gc-or" }))).code === 404,
    );
    const orphan = await kit.core.readNamespacedPod({ namespace: "default", name: "microvm-gc-or" });
    expect(orphan.metadata?.ownerReferences ?? []).toEqual([]);
  });

  it("serves discovery for the built-in and custom groups", async () => {
    const res = await fetch(`${kit.server.url}/apis/banger.dev/v1alpha1`, { headers: { Authorization: "Bearer test-token" } });
    const doc = (await res.json()) as { resources: { name: string }[] };
    expect(doc.resources.map((r) => r.name)).toEqual(["microvms", "microvms/status"]);
    const unauth = await fetch(`${kit.server.url}/api/v1/pods`);
    expect(unauth.status).toBe(401);
  });
});

describe("fake kube-apiserver: nodes", () => {
  it("keeps node status on create, ignores it on update, and changes it through /status", async () => {
    const n = await kit.core.createNode({ body: nodeBody("node-a", { cpu: "4", memory: "8Gi", "banger.dev/microvm": "10" }) });
    expect(n.status?.allocatable?.["banger.dev/microvm"]).toBe("10");
    const upd = await kit.core.patchNode(
      { name: "node-a", body: { metadata: { labels: { "banger.dev/node": "true" } }, status: { allocatable: { cpu: "1" } } } },
      mergePatch,
    );
    expect(upd.metadata?.labels?.["banger.dev/node"]).toBe("true");
    expect(upd.status?.allocatable?.cpu).toBe("4");
    const st = await kit.core.patchNodeStatus({ name: "node-a", body: { status: { allocatable: { "banger.dev/microvm": "3" } } } }, strategicPatch);
    expect(st.status?.allocatable).toEqual({ cpu: "4", memory: "8Gi", "banger.dev/microvm": "3" });
  });
});
