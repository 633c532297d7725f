/**
 * The MicroVM custom resource (banger.dev/v1alpha1) and the conventions that tie it to a placeholder
 * Pod and to the Nodes that run bangerd (docs/scale-out.md). The controller and the node agent talk
 * only through these objects on the API server, never to each other.
 */
export const MICROVM_GROUP = "banger.dev";
export const MICROVM_VERSION = "v1alpha1";
export const MICROVM_KIND = "MicroVM";
export const MICROVM_PLURAL = "microvms";

/** Node label set by bangerd's node agent; placeholder Pods require it (node affinity). */
export const NODE_LABEL = "banger.dev/node";
/** Extended resource: how many more microVMs a node takes. Every placeholder requests 1. */
export const MICROVM_RESOURCE = "banger.dev/microvm";
/** Taint an operator may put on bangerd nodes so ordinary Pods stay off; placeholders tolerate it. */
export const NODE_TAINT = "banger.dev/microvm";
/** Node annotation: the image digests the node holds, comma-separated (placement prefers them). */
export const IMAGES_ANNOTATION = "banger.dev/images";
/** Placeholder Pod annotation and label naming the MicroVM it stands for. */
export const MICROVM_UID_ANNOTATION = "banger.dev/microvm-uid";
export const MICROVM_NAME_LABEL = "banger.dev/microvm";
/** On the MicroVM while a node still holds its VM; the node agent removes it after the VM is gone. */
export const VM_FINALIZER = "banger.dev/vm-cleanup";
/** The node label kubelets set to the node's name: the topology a placeholder's pod affinity is co-located in. */
export const HOSTNAME_LABEL = "kubernetes.io/hostname";
/** The placeholder's image: it never runs a workload. */
export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";

export interface MicroVmSpec {
  /** An image name known to the nodes, or a content digest `sha256:<64 hex>`. */
  image: string;
  vcpus: number;
  memoryMib: number;
  nat?: boolean;
  /** "hostPort:guestPort" forwards on the node. */
  ports?: string[];
  /** Names of other MicroVMs in the same namespace this one may talk to (co-located on one node: src/domain/microvm-spec.ts). */
  peers?: string[];
  /** Deleted this long after `status.runningSince`. */
  ttlSeconds?: number;
}

export type MicroVmPhase = "Pending" | "Placed" | "Pulling" | "Creating" | "Running" | "Failed" | "Deleting" | "NodeLost";

export interface MicroVmCondition {
  type: "Scheduled" | "ImageReady" | "Ready" | "NodeLost" | string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface MicroVmStatus {
  phase?: MicroVmPhase;
  node?: string;
  ip?: string;
  /** The VM's name on its node (`banger vm show` there). */
  vmName?: string;
  /** Stage timings of the create on the node, pull and placement included. */
  stages?: { name: string; ms: number }[];
  conditions?: MicroVmCondition[];
  lastError?: string;
  observedGeneration?: number;
  /** When the MicroVM first reached Running (ISO, second precision); kept across failover. `ttlSeconds` counts from here. */
  runningSince?: string;
}

export interface MicroVm {
  namespace: string;
  name: string;
  uid: string;
  generation?: number;
  deleting: boolean;
  spec: MicroVmSpec;
  status: MicroVmStatus;
}

export function placeholderPodName(microVmName: string): string {
  return `microvm-${microVmName}`;
}

/**
 * The external id a node's VM carries: the MicroVM's uid. Unique per object for all time, so a
 * replayed or duplicated event finds the VM it already made instead of making a second.
 */
export function externalIdOf(vm: Pick<MicroVm, "uid">): string {
  return `k8s:${vm.uid}`;
}
