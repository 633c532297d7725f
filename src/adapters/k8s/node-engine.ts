import { CoreV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import {
  HOSTNAME_LABEL,
  IMAGES_ANNOTATION,
  MICROVM_GROUP,
  MICROVM_KIND,
  MICROVM_NAME_LABEL,
  MICROVM_PLURAL,
  MICROVM_RESOURCE,
  MICROVM_UID_ANNOTATION,
  MICROVM_VERSION,
  NODE_LABEL,
  VM_FINALIZER,
  type MicroVm,
  type MicroVmSpec,
  type MicroVmStatus,
} from "../../domain/microvm.js";
import type { ClusterEngine, NodeCapacity } from "../../ports/cluster.js";
import { callOptions } from "./call-options.js";
import { statusOf } from "./client.js";
import { listWatch, type KubeObject } from "./node-watch.js";

type Ref = Pick<MicroVm, "namespace" | "name" | "uid">;
const CR = { group: MICROVM_GROUP, version: MICROVM_VERSION, plural: MICROVM_PLURAL };

/** The MicroVM a placeholder Pod stands for: its annotation, else its controlling owner. */
export function microVmUidOf(pod: KubeObject): string | undefined {
  const m = pod.metadata;
  return m?.annotations?.[MICROVM_UID_ANNOTATION] ?? m?.ownerReferences?.find((o) => o.kind === MICROVM_KIND && o.controller)?.uid;
}

export function toMicroVm(o: KubeObject): MicroVm {
  const m = o.metadata ?? {};
  return {
    namespace: m.namespace ?? "",
    name: m.name ?? "",
    uid: m.uid ?? "",
    ...(m.generation !== undefined ? { generation: m.generation } : {}),
    deleting: !!m.deletionTimestamp,
    spec: (o.spec ?? {}) as MicroVmSpec,
    status: (o.status ?? {}) as MicroVmStatus,
  };
}

/**
 * What `node` must run: every MicroVM a live placeholder Pod bound here stands for, plus those
 * being deleted that this node reported as its own and still hold the finalizer (their Pod may be
 * gone already; the VM and the finalizer must still go).
 */
export function assignedSet(node: string, pods: Iterable<KubeObject>, microvms: Iterable<KubeObject>): MicroVm[] {
  const byUid = new Map<string, KubeObject>();
  for (const o of microvms) if (o.metadata?.uid) byUid.set(o.metadata.uid, o);
  const out = new Map<string, MicroVm>();
  for (const pod of pods) {
    if (pod.metadata?.deletionTimestamp) continue;
    const uid = microVmUidOf(pod);
    const mv = uid ? byUid.get(uid) : undefined;
    if (mv && mv.metadata?.namespace === pod.metadata?.namespace) out.set(uid!, toMicroVm(mv));
  }
  for (const [uid, o] of byUid) {
    const mv = toMicroVm(o);
    if (mv.deleting && mv.status.node === node && o.metadata?.finalizers?.includes(VM_FINALIZER)) out.set(uid, mv);
  }
  return [...out.values()];
}

/**
 * The node side of ClusterEngine on Kubernetes (client-node): watches, status writes, finalizer
 * release and Node registration. Every call carries a deadline (callOptions).
 */
export class KubeNodeEngine implements ClusterEngine {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;

  constructor(
    private readonly kc: KubeConfig,
    private readonly log: Logger,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  place(): Promise<void> {
    return Promise.reject(new Error("placement is the controller's (banger-k8s), not the node agent's"));
  }

  async watchAssigned(node: string, onChange: (assigned: MicroVm[]) => void, signal: AbortSignal): Promise<void> {
    let pods: Map<string, KubeObject> | undefined;
    let microvms: Map<string, KubeObject> | undefined;
    const emit = () => {
      if (pods && microvms) onChange(assignedSet(node, pods.values(), microvms.values()));
    };
    const podQuery = { fieldSelector: `spec.nodeName=${node}`, labelSelector: MICROVM_NAME_LABEL };
    await Promise.all([
      listWatch(
        this.kc,
        {
          what: "pods",
          path: "/api/v1/pods",
          query: podQuery,
          list: async () => {
            const l = await this.core.listPodForAllNamespaces(podQuery, callOptions());
            return { items: l.items as KubeObject[], resourceVersion: l.metadata?.resourceVersion ?? "" };
          },
        },
        (m) => ((pods = m), emit()),
        signal,
        this.log,
      ),
      listWatch(
        this.kc,
        {
          what: "microvms",
          path: `/apis/${MICROVM_GROUP}/${MICROVM_VERSION}/${MICROVM_PLURAL}`,
          query: {},
          list: async () => {
            const l = (await this.custom.listClusterCustomObject(CR, callOptions())) as { items: KubeObject[]; metadata?: { resourceVersion?: string } };
            return { items: l.items, resourceVersion: l.metadata?.resourceVersion ?? "" };
          },
        },
        (m) => ((microvms = m), emit()),
        signal,
        this.log,
      ),
    ]);
  }

  async report(vm: Ref, status: MicroVmStatus): Promise<void> {
    // A merge patch replaces lists whole (stages, conditions), which is what the agent means. What the
    // agent leaves out is sent as null so it goes: a recovered MicroVM loses its old lastError, and one
    // placed again on this node loses the ip and vmName of its VM on the lost node until a VM here has them
    // (the controller clears them when it sees the move, but this agent may write first).
    const body = { status: { ...status, ip: status.ip ?? null, vmName: status.vmName ?? null, lastError: status.lastError ?? null } };
    try {
      await this.custom.patchNamespacedCustomObjectStatus({ ...CR, namespace: vm.namespace, name: vm.name, body }, callOptions("merge"));
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
  }

  async release(vm: Ref): Promise<void> {
    // Read-modify-write with the resourceVersion: a concurrent writer makes it 409, and it is read again.
    for (let attempt = 0; attempt < 5; attempt++) {
      let obj: KubeObject;
      try {
        obj = (await this.custom.getNamespacedCustomObject({ ...CR, namespace: vm.namespace, name: vm.name }, callOptions())) as KubeObject;
      } catch (e) {
        if (statusOf(e) === 404) return;
        throw e;
      }
      const finalizers = obj.metadata?.finalizers ?? [];
      if (obj.metadata?.uid !== vm.uid || !finalizers.includes(VM_FINALIZER)) return;
      const body = { ...obj, metadata: { ...obj.metadata, finalizers: finalizers.filter((f) => f !== VM_FINALIZER) } };
      try {
        await this.custom.replaceNamespacedCustomObject({ ...CR, namespace: vm.namespace, name: vm.name, body }, callOptions());
        return;
      } catch (e) {
        const code = statusOf(e);
        if (code === 404) return;
        if (code !== 409) throw e;
      }
    }
    throw new Error(`could not remove finalizer ${VM_FINALIZER} from ${vm.namespace}/${vm.name}: it kept changing (409)`);
  }

  async registerNode(node: string, cap: NodeCapacity): Promise<void> {
    const meta = { labels: { [NODE_LABEL]: "true" }, annotations: { [IMAGES_ANNOTATION]: cap.images.join(",") } };
    const microvms = String(cap.microvms);
    let ours = false;
    try {
      await this.core.patchNode({ name: node, body: { metadata: meta } }, callOptions("merge"));
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
      // No kubelet registered this node (a bangerd-only host): the agent makes the Node itself.
      // As a kubelet would label it: pod affinity between peers' placeholders is by this topology key.
      const labels = { ...meta.labels, [HOSTNAME_LABEL]: node };
      await this.core.createNode({ body: { metadata: { name: node, ...meta, labels } } }, callOptions());
      ours = true;
    }
    const resources: Record<string, string> = { [MICROVM_RESOURCE]: microvms };
    if (ours) Object.assign(resources, { cpu: String(cap.vcpus), memory: `${cap.memoryMib}Mi`, pods: String(Math.max(cap.microvms, 1) + 10) });
    const status: Record<string, unknown> = { capacity: resources, allocatable: resources };
    if (ours) {
      const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      status.conditions = [
        { type: "Ready", status: "True", reason: "BangerdReady", message: "bangerd node agent is running", lastHeartbeatTime: now, lastTransitionTime: now },
      ];
    }
    await this.core.patchNodeStatus({ name: node, body: { status } }, callOptions("merge"));
  }
}
