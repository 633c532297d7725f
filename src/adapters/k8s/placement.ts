import type { Logger } from "pino";
import { BangerError } from "../../domain/errors.js";
import { MICROVM_UID_ANNOTATION, type MicroVm, placeholderPodName } from "../../domain/microvm.js";
import type { ClusterEngine } from "../../ports/cluster.js";
import { type KubeClients, clusterError, statusOf } from "./client.js";
import { type PlaceholderOptions, placeholderPod } from "./objects.js";

/**
 * ClusterEngine.place on Kubernetes: one placeholder Pod per MicroVM, which kube-scheduler binds
 * (docs/scale-out.md). Idempotent by the MicroVM's uid: a Pod of that name standing for the same
 * uid is success, one standing for another object is a CLUSTER_CONFLICT.
 */
export class KubePlacement implements Pick<ClusterEngine, "place"> {
  constructor(
    private readonly clients: KubeClients,
    private readonly log: Logger,
    private readonly opts: PlaceholderOptions = {},
  ) {}

  async place(vm: MicroVm, colocate: readonly string[] = []): Promise<void> {
    const body = placeholderPod(vm, this.opts, colocate);
    const name = placeholderPodName(vm.name);
    try {
      await this.clients.core.createNamespacedPod({ namespace: vm.namespace, body });
      this.log.info({ vm: `${vm.namespace}/${vm.name}`, stage: "place", pod: name }, "placeholder pod created");
      return;
    } catch (e) {
      if (statusOf(e) !== 409) throw clusterError(`creating the placeholder pod ${vm.namespace}/${name}`, e);
    }
    const existing = await this.clients.core.readNamespacedPod({ namespace: vm.namespace, name }).catch((e: unknown) => {
      // Deleted between our create and this read: the next reconcile creates it again.
      if (statusOf(e) === 404) return undefined;
      throw clusterError(`reading the placeholder pod ${vm.namespace}/${name}`, e);
    });
    const owner = existing?.metadata?.annotations?.[MICROVM_UID_ANNOTATION];
    if (existing && owner !== vm.uid)
      throw new BangerError(
        "CLUSTER_CONFLICT",
        `pod ${vm.namespace}/${name} exists and stands for ${owner ? `another MicroVM (uid ${owner})` : "no MicroVM"}`,
        { hint: `delete or rename that pod (kubectl -n ${vm.namespace} delete pod ${name}); the MicroVM is placed once it is gone` },
      );
  }
}
