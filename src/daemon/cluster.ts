import { availableParallelism, hostname } from "node:os";
import type { Logger } from "pino";
import type { LoadedConfig } from "../config/load.js";
import type { AppDeps } from "../app/deps.js";
import type { Check } from "../app/doctor.js";
import type { EventBus } from "../app/event-bus.js";
import type { ExternalVms } from "../app/external-vms.js";
import { ClusterNode, type EnsureImage } from "../app/cluster-node.js";
import { imageNotFound } from "../app/images.js";

export interface ClusterHandle {
  check(): Check;
  close(): Promise<void>;
}

/**
 * Until the image store is wired in, images are found by name or alias only: a digest this node
 * does not hold is IMAGE_NOT_FOUND, which the agent reports as ImageReady False, ImageNotFound.
 */
export function lookupOnly(d: Pick<AppDeps, "store">): EnsureImage {
  return (ref) => {
    const img = d.store.getImage(ref);
    return img ? Promise.resolve(img) : Promise.reject(imageNotFound(ref));
  };
}

/** The node agent, when `cluster.enabled`; otherwise a doctor line saying it is off. */
export function startCluster(
  cfg: LoadedConfig,
  log: Logger,
  deps: Pick<AppDeps, "store" | "host">,
  external: ExternalVms,
  bus: EventBus,
  ensureImage: EnsureImage = lookupOnly(deps),
): ClusterHandle {
  const c = cfg.config.cluster;
  if (!c.enabled)
    return { check: () => ({ name: "cluster", status: "PASS", detail: "node agent off (cluster.enabled = false)" }), close: async () => undefined };
  const node = c.node_name || hostname().toLowerCase();
  const agentLog = log.child({ component: "cluster", node });
  let agent: ClusterNode | undefined;
  let startError: string | undefined;
  const stop = new AbortController();
  let unsubscribe = () => {};
  // The Kubernetes client is large: only a node that runs the agent loads it, so a plain bangerd's
  // resident memory never pays for it (docs/architecture.md, "CLI and daemon footprint").
  void (async () => {
    const [{ KubeNodeEngine }, { loadKube }] = await Promise.all([import("../adapters/k8s/node-engine.js"), import("../adapters/k8s/kubeconfig.js")]);
    if (stop.signal.aborted) return;
    // A kubeconfig file, else a server URL (with a token file), else the service account of bangerd's DaemonSet Pod.
    const { kc } = loadKube({
      kubeconfig: c.kubeconfig || undefined,
      server: c.server || undefined,
      tokenFile: c.token_file || undefined,
      caFile: c.ca_file || undefined,
      inCluster: !c.kubeconfig && !c.server,
    });
    const a = new ClusterNode(
      {
        engine: new KubeNodeEngine(kc, agentLog),
        external,
        ensureImage,
        events: (id) => deps.store.events(id),
        nameTaken: (n) => deps.store.nameTaken(n),
        capacity: () => {
          const m = deps.host.machine?.() ?? { cpus: 1, memTotalMib: 1024 };
          const digests = deps.store
            .listImages()
            .map((i) => (i as { digest?: string }).digest)
            .filter((x): x is string => !!x);
          return { vcpus: m.cpus, memoryMib: m.memTotalMib, microvms: c.microvms, images: digests };
        },
        log: agentLog,
      },
      // 0: one create per CPU. Cold boots are CPU-bound; more at once only makes each later.
      { node, waitSsh: c.wait_ssh, resyncMs: c.resync_s * 1000, maxParallelCreates: c.max_parallel_creates || availableParallelism() },
    );
    agent = a;
    // A new or removed image changes what the node advertises.
    unsubscribe = bus.subscribe((e) => {
      if (e.type === "images") void a.register();
    });
    void a.run(stop.signal).catch((e: unknown) => {
      startError = (e as Error).message;
      agentLog.error({ stage: "cluster", err: startError }, "node agent stopped");
    });
    agentLog.info({ stage: "cluster", microvms: c.microvms }, "node agent started");
  })().catch((e: unknown) => {
    startError = (e as Error).message;
    agentLog.error({ stage: "cluster", err: startError }, "node agent not running");
  });
  return {
    check(): Check {
      if (!agent || startError) {
        if (!agent && !startError)
          return { name: "cluster", status: "WARN", detail: `node agent for ${node} is starting`, fix: "wait a moment and run doctor again" };
        return {
          name: "cluster",
          status: "FAIL",
          detail: `node agent for ${node} not running: ${startError}`,
          fix: "check [cluster] kubeconfig/server/token_file, then restart bangerd",
        };
      }
      const s = agent.status;
      if (!s.registered || !s.synced) {
        return {
          name: "cluster",
          status: "WARN",
          detail: `node ${node}: ${s.registered ? "registered" : "not registered yet"}, ${s.synced ? "watching" : "not watching yet"} (bangerd.log says why)`,
          fix: "check that the API server is reachable and the node agent's RBAC allows nodes patch and microvms get/list/watch/update",
        };
      }
      return {
        name: "cluster",
        status: s.failing > 0 ? "WARN" : "PASS",
        detail: `node ${node}: ${s.assigned} MicroVM(s) assigned, ${s.creating} creating, ${s.queued} queued for a create slot, ${s.failing} failing`,
      };
    },
    // Passes in flight are not awaited: a create among them is cancelled by the shutdown's drain.
    async close() {
      unsubscribe();
      stop.abort();
    },
  };
}
