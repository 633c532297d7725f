import type { MicroVm, MicroVmStatus } from "../domain/microvm.js";
import type { ClusterEngine } from "./cluster.js";

/**
 * The controller's side of a cluster engine (docs/scale-out.md): it sees MicroVMs, their
 * placeholders and the nodes, and acts only through these verbs. Engine-neutral, like ClusterEngine.
 */
export interface Placeholder {
  namespace: string;
  name: string;
  /** The engine's id of the placeholder itself (a delete names it, so a newer one is never hit). */
  uid: string;
  /** The MicroVM it stands for (its annotation). */
  microVmUid: string;
  /** Set once the scheduler bound it. */
  node?: string;
  /** The scheduler's verdict while it cannot be bound. */
  unschedulable?: { reason: string; message: string };
  deleting: boolean;
}

export interface NodeHealth {
  name: string;
  ready: boolean;
  /** When Ready last changed (ISO time), to measure how long a node has been NotReady. */
  since?: string;
}

/** A MicroVM as the controller sees it: the domain object and whether the VM finalizer is on it. */
export interface WatchedMicroVm extends MicroVm {
  hasFinalizer: boolean;
}

/** Everything the controller reconciles against, complete (never a partial list). */
export interface ClusterView {
  microVms: WatchedMicroVm[];
  placeholders: Placeholder[];
  nodes: NodeHealth[];
}

export interface ClusterControl extends Pick<ClusterEngine, "place"> {
  /**
   * Calls `onChange` with the whole view after the first complete listing and after every
   * change, until `signal` aborts. Expired watches are resumed or relisted inside.
   */
  watch(onChange: (view: ClusterView) => void, signal: AbortSignal): Promise<void>;
  /** Is the node still registered? Asked of the engine itself before a node is declared lost. */
  nodeExists(name: string): Promise<boolean>;
  /** Deletes this placeholder (by its uid: a newer one of the same name stays). Gone is not an error. */
  unplace(p: Placeholder): Promise<void>;
  /**
   * Deletes the MicroVM itself (its time to live is over), by uid so a newer one of the same name
   * stays. The usual path follows: the finalizer holds it until its node removed the VM. Gone is not an error.
   */
  remove(vm: Pick<MicroVm, "namespace" | "name" | "uid">): Promise<void>;
  /** Adds the VM finalizer unless present or the MicroVM is being deleted. */
  addFinalizer(vm: MicroVm): Promise<void>;
  /** Removes the VM finalizer (the VM is known gone, or can never be cleaned by a node). */
  dropFinalizer(vm: MicroVm): Promise<void>;
  /**
   * Read-modify-write of the MicroVM's status: `change` gets the stored status and returns the new
   * one, or undefined for no write. Retried on a concurrent write; a MicroVM that is gone is not an error.
   */
  updateStatus(vm: Pick<MicroVm, "namespace" | "name" | "uid">, change: (current: MicroVmStatus) => MicroVmStatus | undefined): Promise<void>;
}
