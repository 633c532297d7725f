// banger-k8s against the strict fake API server: placement through placeholder Pods, status
// mirroring, garbage collection behind the VM finalizer, expired watches. Real client, real CRD file.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Kit, MVM, jsonPatch, until } from "../fakes/kube-apiserver/testkit.js";
import { type Running, addNode, applyVm, getVm, startController, startWorld, vmPhase } from "../helpers/k8s-world.js";

let kit: Kit;
let ctl: Running | undefined;

beforeEach(async () => {
  kit = await startWorld();
  await addNode(kit, "node-a", { cpu: "8", memory: "16Gi", microvms: "10" });
  await addNode(kit, "node-b", { cpu: "8", memory: "16Gi", microvms: "10" });
});

afterEach(async () => {
  await ctl?.stop();
  ctl = undefined;
  expect(kit.server.problems()).toEqual([]);
  await kit.server.close();
});

describe("banger-k8s controller", () => {
  it("places a MicroVM through a placeholder Pod that the scheduler binds, and mirrors it into status", async () => {
    ctl = startController(kit);
    const created = await applyVm(kit, "web", { vcpus: 2, memoryMib: 2048 });
    const vm = await vmPhase(kit, "web", "Placed");
    const pod = await kit.core.readNamespacedPod({ namespace: "default", name: "microvm-web" });

    expect(pod.metadata?.ownerReferences).toEqual([
      { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", name: "web", uid: created.metadata.uid, controller: true, blockOwnerDeletion: true },
    ]);
    expect(pod.metadata?.annotations?.["banger.dev/microvm-uid"]).toBe(created.metadata.uid);
    expect(pod.metadata?.labels?.["banger.dev/microvm"]).toBe("web");
    const c = pod.spec!.containers[0]!;
    expect(c.image).toBe("registry.k8s.io/pause:3.10");
    expect(c.resources?.requests).toEqual({ cpu: "2", memory: "2048Mi", "banger.dev/microvm": "1" });
    expect(c.resources?.limits).toEqual(c.resources?.requests);
    expect(pod.spec?.restartPolicy).toBe("Never");
    expect(pod.spec?.automountServiceAccountToken).toBe(false);
    expect(pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: "banger.dev/node", operator: "In", values: ["true"] }] },
    ]);
    expect(pod.spec?.tolerations).toContainEqual({ key: "banger.dev/microvm", operator: "Exists", effect: "NoSchedule" });

    expect(vm.status.node).toBe(pod.spec?.nodeName);
    expect(["node-a", "node-b"]).toContain(vm.status.node);
    expect(vm.metadata.finalizers).toEqual(["banger.dev/vm-cleanup"]);
    expect(vm.status.conditions).toContainEqual(expect.objectContaining({ type: "Scheduled", status: "True", reason: "Scheduled" }));
  });

  it("keeps a MicroVM larger than any node Pending with the scheduler's reason", async () => {
    ctl = startController(kit);
    await applyVm(kit, "huge", { memoryMib: 65536 });
    const vm = await vmPhase(kit, "huge", "Pending");
    const cond = await until("the scheduler's verdict in status", async () => {
      const v = await getVm(kit, "huge");
      return v?.status?.conditions?.find((c: { type: string; reason: string }) => c.type === "Scheduled" && c.reason === "Unschedulable");
    });
    expect(cond.status).toBe("False");
    expect(cond.message).toBe("0/2 nodes are available: 2 Insufficient memory.");
    expect(vm.status.node).toBeUndefined();
    const pod = await kit.core.readNamespacedPod({ namespace: "default", name: "microvm-huge" });
    expect(pod.spec?.nodeName).toBeUndefined();
  });

  it("deletes the placeholder Pod (garbage collection) once the node agent drops the finalizer", async () => {
    ctl = startController(kit);
    await applyVm(kit, "gone");
    await vmPhase(kit, "gone", "Placed");
    await kit.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name: "gone" });
    // Bound to a live node: the controller leaves the finalizer to that node's agent.
    const deleting = await until("deletionTimestamp", async () => ((await getVm(kit, "gone"))?.metadata.deletionTimestamp ? getVm(kit, "gone") : undefined));
    expect(deleting.metadata.finalizers).toEqual(["banger.dev/vm-cleanup"]);
    await kit.core.readNamespacedPod({ namespace: "default", name: "microvm-gone" });

    // The node agent, having removed the VM, takes the finalizer off (as ClusterEngine.release does).
    await kit.custom.patchNamespacedCustomObject(
      {
        ...MVM,
        namespace: "default",
        name: "gone",
        body: [
          { op: "test", path: "/metadata/finalizers/0", value: "banger.dev/vm-cleanup" },
          { op: "remove", path: "/metadata/finalizers/0" },
        ],
      },
      jsonPatch,
    );
    await until("MicroVM gone", async () => (await getVm(kit, "gone")) === undefined);
    await until("placeholder collected", () =>
      kit.core.readNamespacedPod({ namespace: "default", name: "microvm-gone" }).then(
        () => false,
        (e: { code?: number }) => e.code === 404,
      ),
    );
  });

  it("drops the finalizer itself for a MicroVM deleted before it was ever placed", async () => {
    ctl = startController(kit);
    await applyVm(kit, "never", { memoryMib: 65536 });
    await vmPhase(kit, "never", "Pending");
    await kit.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name: "never" });
    await until("MicroVM gone", async () => (await getVm(kit, "never")) === undefined);
  });

  it("resumes after its watch history is compacted away (410 Gone), by relisting", async () => {
    ctl = startController(kit);
    await applyVm(kit, "before");
    await vmPhase(kit, "before", "Placed");
    kit.server.compact();
    kit.server.watches.closeAll();
    await until("a relist after 410", () => ctl!.logs.has("watch history expired (410); relisting"));
    await applyVm(kit, "after");
    const vm = await vmPhase(kit, "after", "Placed");
    expect(vm.metadata.finalizers).toEqual(["banger.dev/vm-cleanup"]);
    const pods = await kit.core.listNamespacedPod({ namespace: "default" });
    expect(pods.items.map((p) => p.metadata?.name).sort()).toEqual(["microvm-after", "microvm-before"]);
  });

  it("reports a Pod of the placeholder's name that belongs to something else as a conflict", async () => {
    await kit.core.createNamespacedPod({
      namespace: "default",
      body: { metadata: { name: "microvm-taken" }, spec: { containers: [{ name: "x", image: "registry.k8s.io/pause:3.10" }] } },
    });
    ctl = startController(kit);
    await applyVm(kit, "taken");
    const vm = await until("conflict in status", async () => {
      const v = await getVm(kit, "taken");
      return v?.status?.conditions?.some((c: { reason: string }) => c.reason === "PlaceholderConflict") ? v : undefined;
    });
    expect(vm.status.phase).toBe("Pending");
    expect(vm.status.lastError).toMatch(/pod default\/microvm-taken exists and stands for no MicroVM/);
  });
});
