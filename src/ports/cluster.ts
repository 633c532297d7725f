import type { MicroVm, MicroVmSpec, MicroVmStatus } from "../domain/microvm.js";

/**
 * A distributed engine banger scales out on (Kubernetes first). The app asks it three things —
 * place, watch, report — and never learns which engine answers (docs/scale-out.md).
 */
export interface ClusterEngine {
  /**
   * Controller side: make sure the engine will place `vm` on a node (for Kubernetes: a
   * placeholder Pod owned by the MicroVM). Idempotent; a second call for the same uid does nothing.
   * `colocate` names MicroVMs of its namespace it must share a node with (its peers: a peering
   * works only on one node's bridge); the engine's scheduler enforces it, and a MicroVM that
   * cannot join them stays unplaced with the scheduler's reason.
   */
  place(vm: MicroVm, colocate?: readonly string[]): Promise<void>;

  /**
   * Node side: what this node must run. Calls `onChange` with the full desired set (every
   * MicroVM bound to `node`, deleting ones included) after each change, and once at start, until
   * `signal` aborts. Expired watches are resumed or relisted inside; the caller sees only sets.
   */
  watchAssigned(node: string, onChange: (assigned: MicroVm[]) => void, signal: AbortSignal): Promise<void>;

  /** Node side: write `status` (merged) on the MicroVM. A MicroVM that is gone is not an error. */
  report(vm: Pick<MicroVm, "namespace" | "name" | "uid">, status: MicroVmStatus): Promise<void>;

  /** Node side: the VM is gone from the node; the MicroVM may now be deleted (finalizer off). */
  release(vm: Pick<MicroVm, "namespace" | "name" | "uid">): Promise<void>;

  /** Node side: advertise capacity and the images held, so placement can weigh them. */
  registerNode(node: string, capacity: NodeCapacity): Promise<void>;
}

export interface NodeCapacity {
  vcpus: number;
  memoryMib: number;
  /** How many more microVMs the node takes (the extended resource's allocatable). */
  microvms: number;
  /** Image digests held (`sha256:…`). */
  images: string[];
}

export type { MicroVmSpec };
