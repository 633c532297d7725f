import type { CoreV1Api, V1Node, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { MICROVM_NAME_LABEL, type MicroVm, type MicroVmStatus, VM_FINALIZER } from "../../domain/microvm.js";
import type { ClusterControl, ClusterView, Placeholder } from "../../ports/cluster-control.js";
import { type KubeClients, MVM, clusterError, statusOf } from "./client.js";
import { type MicroVmObject, type PlaceholderOptions, toNodeHealth, toPlaceholder, toWatchedMicroVm } from "./objects.js";
import { KubePlacement } from "./placement.js";
import { Reflector } from "./reflector.js";

/** Read-modify-write attempts before a write that keeps meeting newer versions gives up until the next pass. */
const CONFLICT_RETRIES = 5;

type ListOf<T> = { items: T[]; metadata?: { resourceVersion?: string } };
const listed = <T>(l: ListOf<T>) => ({ items: l.items, resourceVersion: l.metadata?.resourceVersion ?? "0" });

/** The controller's view and verbs on Kubernetes: three reflectors (MicroVMs, placeholder Pods, Nodes) and writes. */
export class KubeClusterControl implements ClusterControl {
  private readonly placement: KubePlacement;
  private readonly core: CoreV1Api;

  constructor(
    private readonly clients: KubeClients,
    private readonly log: Logger,
    opts: PlaceholderOptions = {},
  ) {
    this.placement = new KubePlacement(clients, log, opts);
    this.core = clients.core;
  }

  place(vm: MicroVm, colocate?: readonly string[]): Promise<void> {
    return this.placement.place(vm, colocate);
  }

  async watch(onChange: (view: ClusterView) => void, signal: AbortSignal): Promise<void> {
    const { kc, core, custom } = this.clients;
    const reflectors: Reflector<never>[] = [];
    const changed = () => {
      // Nothing is decided on a partial picture: a node not yet listed is not a lost node.
      if (!reflectors.every((r) => r.synced)) return;
      const [vms, pods, nodes] = reflectors as unknown as [Reflector<MicroVmObject & never>, Reflector<V1Pod & never>, Reflector<V1Node & never>];
      onChange({
        microVms: [...vms.items.values()].map(toWatchedMicroVm),
        placeholders: [...pods.items.values()].map(toPlaceholder).filter((p): p is Placeholder => p !== undefined),
        nodes: [...nodes.items.values()].map(toNodeHealth),
      });
    };
    const log = this.log;
    reflectors.push(
      new Reflector(
        kc,
        {
          what: "microvms",
          path: `/apis/${MVM.group}/${MVM.version}/${MVM.plural}`,
          list: async () => listed((await custom.listClusterCustomObject({ ...MVM })) as ListOf<never>),
        },
        changed,
        log,
      ),
      new Reflector(
        kc,
        {
          what: "pods",
          path: "/api/v1/pods",
          labelSelector: MICROVM_NAME_LABEL,
          list: async () => listed((await core.listPodForAllNamespaces({ labelSelector: MICROVM_NAME_LABEL })) as ListOf<never>),
        },
        changed,
        log,
      ),
      new Reflector(kc, { what: "nodes", path: "/api/v1/nodes", list: async () => listed((await core.listNode()) as ListOf<never>) }, changed, log),
    );
    await Promise.all(reflectors.map((r) => r.run(signal)));
  }

  async nodeExists(name: string): Promise<boolean> {
    try {
      await this.core.readNode({ name });
      return true;
    } catch (e) {
      if (statusOf(e) === 404) return false;
      throw clusterError(`reading node ${name}`, e);
    }
  }

  async unplace(p: Placeholder): Promise<void> {
    try {
      await this.core.deleteNamespacedPod({ namespace: p.namespace, name: p.name, body: { preconditions: { uid: p.uid } } });
    } catch (e) {
      // 404: already gone; 409: the precondition failed, a newer placeholder took the name.
      if (statusOf(e) !== 404 && statusOf(e) !== 409) throw clusterError(`deleting the placeholder pod ${p.namespace}/${p.name}`, e);
    }
  }

  async remove(vm: Pick<MicroVm, "namespace" | "name" | "uid">): Promise<void> {
    const { custom } = this.clients;
    try {
      await custom.deleteNamespacedCustomObject({ ...MVM, namespace: vm.namespace, name: vm.name, body: { preconditions: { uid: vm.uid } } });
    } catch (e) {
      // 404: already gone; 409: the precondition failed, the name now belongs to a newer MicroVM.
      if (statusOf(e) !== 404 && statusOf(e) !== 409) throw clusterError(`deleting MicroVM ${vm.namespace}/${vm.name}`, e);
    }
  }

  addFinalizer(vm: MicroVm): Promise<void> {
    return this.rewrite(vm, (o) => {
      const f = o.metadata.finalizers ?? [];
      if (o.metadata.deletionTimestamp || f.includes(VM_FINALIZER)) return false;
      o.metadata.finalizers = [...f, VM_FINALIZER];
      return true;
    });
  }

  dropFinalizer(vm: MicroVm): Promise<void> {
    return this.rewrite(vm, (o) => {
      const f = o.metadata.finalizers ?? [];
      if (!f.includes(VM_FINALIZER)) return false;
      o.metadata.finalizers = f.filter((x) => x !== VM_FINALIZER);
      return true;
    });
  }

  updateStatus(vm: Pick<MicroVm, "namespace" | "name" | "uid">, change: (current: MicroVmStatus) => MicroVmStatus | undefined): Promise<void> {
    return this.rewrite(
      vm,
      (o) => {
        const next = change(o.status ?? {});
        if (!next) return false;
        o.status = next;
        return true;
      },
      true,
    );
  }

  /** GET, edit, PUT with the read resourceVersion; 409 (a concurrent writer) reads again. */
  private async rewrite(vm: Pick<MicroVm, "namespace" | "name" | "uid">, edit: (o: MicroVmObject) => boolean, status = false): Promise<void> {
    const { custom } = this.clients;
    const at = { ...MVM, namespace: vm.namespace, name: vm.name };
    const what = `${status ? "writing the status of" : "updating"} MicroVM ${vm.namespace}/${vm.name}`;
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      let o: MicroVmObject;
      try {
        o = (await custom.getNamespacedCustomObject(at)) as MicroVmObject;
      } catch (e) {
        if (statusOf(e) === 404) return;
        throw clusterError(what, e);
      }
      // Same name, another object: the one we meant is gone.
      if (o.metadata.uid !== vm.uid || !edit(o)) return;
      try {
        if (status) await custom.replaceNamespacedCustomObjectStatus({ ...at, body: o });
        else await custom.replaceNamespacedCustomObject({ ...at, body: o });
        return;
      } catch (e) {
        if (statusOf(e) === 404) return;
        if (statusOf(e) !== 409) throw clusterError(what, e);
      }
    }
    this.log.warn({ vm: `${vm.namespace}/${vm.name}`, stage: "write" }, "concurrent writes kept winning; the next pass retries");
  }
}
