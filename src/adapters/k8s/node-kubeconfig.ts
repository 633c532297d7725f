import { readFileSync } from "node:fs";
import { KubeConfig, PatchStrategy, type ConfigurationOptions, type ObservableMiddleware } from "@kubernetes/client-node";
import { of } from "@kubernetes/client-node/dist/gen/rxjsStub.js";

/** How the node agent reaches the API server ([cluster] in the config). */
export interface NodeClusterAccess {
  kubeconfig: string;
  server: string;
  tokenFile: string;
  caFile: string;
}

/**
 * A kubeconfig file when given; else a server URL with a bearer token file; else the in-cluster
 * service account (bangerd as a DaemonSet Pod). The node agent's own small loader: the
 * controller has its own (src/adapters/k8s/), and the two may become one.
 */
export function nodeKubeConfig(a: NodeClusterAccess): KubeConfig {
  const kc = new KubeConfig();
  if (a.kubeconfig) kc.loadFromFile(a.kubeconfig);
  else if (a.server) {
    const token = a.tokenFile ? readFileSync(a.tokenFile, "utf8").trim() : undefined;
    kc.loadFromOptions({
      // client-node refuses http:// unless told there is no TLS to verify: a loopback proxy (kubectl proxy) or a test server.
      clusters: [
        { name: "cluster", server: a.server, ...(a.caFile ? { caFile: a.caFile } : {}), ...(a.server.startsWith("http://") ? { skipTLSVerify: true } : {}) },
      ],
      users: [{ name: "bangerd", ...(token ? { token } : {}) }],
      contexts: [{ name: "bangerd", cluster: "cluster", user: "bangerd" }],
      currentContext: "bangerd",
    });
  } else kc.loadFromCluster();
  return kc;
}

/** Every API call of the node agent ends within this, answered or not. */
export const CALL_TIMEOUT_MS = 15_000;

/** Request options: a deadline on the call, and a Content-Type for patches. */
export function callOptions(patch?: "merge"): ConfigurationOptions<ObservableMiddleware> {
  const mw: ObservableMiddleware = {
    pre: (req) => {
      req.setSignal(AbortSignal.timeout(CALL_TIMEOUT_MS));
      if (patch === "merge") req.setHeaderParam("Content-Type", PatchStrategy.MergePatch);
      return of(req);
    },
    post: (res) => of(res),
  };
  return { middleware: [mw], middlewareMergeStrategy: "append" };
}
