// Conversions between the API server's objects and banger's domain: the MicroVM, its placeholder
// Pod (exactly the conventions of src/domain/microvm.ts), and what the controller needs of a Node.
import type { V1Node, V1Pod, V1PodAffinity } from "@kubernetes/client-node";
import {
  HOSTNAME_LABEL,
  MICROVM_GROUP,
  MICROVM_KIND,
  MICROVM_NAME_LABEL,
  MICROVM_RESOURCE,
  MICROVM_UID_ANNOTATION,
  MICROVM_VERSION,
  type MicroVm,
  type MicroVmSpec,
  type MicroVmStatus,
  NODE_LABEL,
  NODE_TAINT,
  PAUSE_IMAGE,
  placeholderPodName,
  VM_FINALIZER,
} from "../../domain/microvm.js";
import type { NodeHealth, Placeholder, WatchedMicroVm } from "../../ports/cluster-control.js";

/** A MicroVM as the API server returns it (custom objects come back as plain JSON). */
export interface MicroVmObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    deletionTimestamp?: string;
    finalizers?: string[];
    creationTimestamp?: string;
    labels?: Record<string, string>;
  };
  spec: MicroVmSpec;
  status?: MicroVmStatus;
}

export function toMicroVm(o: MicroVmObject): MicroVm {
  return {
    namespace: o.metadata.namespace ?? "default",
    name: o.metadata.name,
    uid: o.metadata.uid ?? "",
    generation: o.metadata.generation,
    deleting: Boolean(o.metadata.deletionTimestamp),
    spec: o.spec,
    status: o.status ?? {},
  };
}

export function toWatchedMicroVm(o: MicroVmObject): WatchedMicroVm {
  return { ...toMicroVm(o), hasFinalizer: (o.metadata.finalizers ?? []).includes(VM_FINALIZER) };
}

export interface PlaceholderOptions {
  /** A PriorityClass for placeholders (none: the cluster's default priority). */
  priorityClassName?: string;
}

/**
 * Required pod affinity to the placeholders of `vm`'s peers, on one node (`kubernetes.io/hostname`).
 * The selector includes the MicroVM itself: kube-scheduler lets the first Pod of a group that
 * matches its own term land anywhere, so two MicroVMs naming each other do not wait on each other,
 * and the next one joins whichever node the group is on.
 */
export function peerAffinity(vm: Pick<MicroVm, "name">, colocate: readonly string[]): V1PodAffinity | undefined {
  if (colocate.length === 0) return undefined;
  const values = [vm.name, ...colocate.filter((n) => n !== vm.name)];
  return {
    requiredDuringSchedulingIgnoredDuringExecution: [
      { labelSelector: { matchExpressions: [{ key: MICROVM_NAME_LABEL, operator: "In", values }] }, topologyKey: HOSTNAME_LABEL },
    ],
  };
}

/** The placeholder Pod for a MicroVM: requests what the VM will use, never runs anything. */
export function placeholderPod(vm: MicroVm, opts: PlaceholderOptions = {}, colocate: readonly string[] = []): V1Pod {
  const podAffinity = peerAffinity(vm, colocate);
  const res = { cpu: String(vm.spec.vcpus), memory: `${vm.spec.memoryMib}Mi`, [MICROVM_RESOURCE]: "1" };
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: placeholderPodName(vm.name),
      namespace: vm.namespace,
      labels: { [MICROVM_NAME_LABEL]: vm.name },
      annotations: { [MICROVM_UID_ANNOTATION]: vm.uid },
      ownerReferences: [
        { apiVersion: `${MICROVM_GROUP}/${MICROVM_VERSION}`, kind: MICROVM_KIND, name: vm.name, uid: vm.uid, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      ...(opts.priorityClassName ? { priorityClassName: opts.priorityClassName } : {}),
      containers: [
        {
          name: "pause",
          image: PAUSE_IMAGE,
          resources: { requests: res, limits: res },
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            runAsUser: 65535,
            capabilities: { drop: ["ALL"] },
            seccompProfile: { type: "RuntimeDefault" },
          },
        },
      ],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: NODE_LABEL, operator: "In", values: ["true"] }] }],
          },
        },
        ...(podAffinity ? { podAffinity } : {}),
      },
      tolerations: [{ key: NODE_TAINT, operator: "Exists", effect: "NoSchedule" }],
    },
  };
}

export function toPlaceholder(pod: V1Pod): Placeholder | undefined {
  const microVmUid = pod.metadata?.annotations?.[MICROVM_UID_ANNOTATION];
  if (!microVmUid || !pod.metadata?.name) return undefined;
  const sched = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  const unschedulable =
    !pod.spec?.nodeName && sched?.status === "False" ? { reason: sched.reason ?? "Unschedulable", message: sched.message ?? "" } : undefined;
  return {
    namespace: pod.metadata.namespace ?? "default",
    name: pod.metadata.name,
    uid: pod.metadata.uid ?? "",
    microVmUid,
    node: pod.spec?.nodeName || undefined,
    unschedulable,
    deleting: Boolean(pod.metadata.deletionTimestamp),
  };
}

/** Typed lists give Dates, watch events give strings: both become ISO text. */
function isoOf(t: unknown): string | undefined {
  if (t === undefined || t === null) return undefined;
  const d = t instanceof Date ? t : new Date(String(t));
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function toNodeHealth(node: V1Node): NodeHealth {
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  return { name: node.metadata?.name ?? "", ready: ready?.status === "True", since: isoOf(ready?.lastTransitionTime) };
}
