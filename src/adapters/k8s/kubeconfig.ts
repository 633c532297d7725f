import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { BangerError } from "../../domain/errors.js";

/**
 * Where the API server and its credentials come from, in the order an operator expects. One loader
 * for the controller (banger-k8s), the CLI's k8s contexts and bangerd's node agent ([cluster]).
 */
export interface KubeSource {
  /** A kubeconfig file; unset means $KUBECONFIG, then ~/.kube/config. */
  kubeconfig?: string;
  /** A context in that file; unset means its current-context. */
  context?: string;
  /** The Pod's service account (`/var/run/secrets/kubernetes.io/serviceaccount`). */
  inCluster?: boolean;
  /** An explicit API server URL, with a bearer token or a file holding one. */
  server?: string;
  token?: string;
  tokenFile?: string;
  /** PEM file of the CA that signs the server's certificate (with `server`). */
  caFile?: string;
}

export interface LoadedKube {
  kc: KubeConfig;
  /** The namespace the source names (kubeconfig context, service account), else `default`. */
  namespace: string;
}

const SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

function fail(message: string, hint: string, cause?: unknown): never {
  throw new BangerError("INVALID_CONFIG", message, { hint, cause });
}

/** Loads a KubeConfig from one source; every problem is an INVALID_CONFIG naming the fix. */
export function loadKube(src: KubeSource): LoadedKube {
  const kc = new KubeConfig();
  if (src.server) {
    let token = src.token;
    if (!token && src.tokenFile) token = readFileSync(src.tokenFile, "utf8").trim();
    if (!/^https?:\/\//.test(src.server)) fail(`the API server ${src.server} is not an http(s) URL`, "pass --server https://HOST:6443");
    // Plain http is a local proxy (`kubectl proxy`) that adds the credentials itself; https needs a token.
    const plain = src.server.startsWith("http://");
    if (!token && !plain) fail(`no token for the API server ${src.server}`, "pass --token or --token-file (a service account token)");
    kc.loadFromOptions({
      // client-node refuses an http:// server unless told there is no TLS to verify.
      clusters: [{ name: "banger", server: src.server, ...(src.caFile ? { caFile: src.caFile } : {}), skipTLSVerify: plain }],
      users: [{ name: "banger", ...(token ? { token } : {}) }],
      contexts: [{ name: "banger", cluster: "banger", user: "banger" }],
      currentContext: "banger",
    });
    return { kc, namespace: "default" };
  }
  if (src.inCluster) {
    if (!process.env.KUBERNETES_SERVICE_HOST) fail("--in-cluster outside a Pod (KUBERNETES_SERVICE_HOST is unset)", "run in a Pod, or pass --kubeconfig");
    kc.loadFromCluster();
    const ns = existsSync(SA_NAMESPACE) ? readFileSync(SA_NAMESPACE, "utf8").trim() : "default";
    return { kc, namespace: ns || "default" };
  }
  const file = src.kubeconfig ?? process.env.KUBECONFIG?.split(":")[0] ?? join(homedir(), ".kube", "config");
  if (!existsSync(file)) fail(`no kubeconfig at ${file}`, "pass --kubeconfig FILE, set KUBECONFIG, or name one in the context's config");
  try {
    kc.loadFromFile(file);
  } catch (e) {
    fail(`cannot read the kubeconfig ${file}: ${(e as Error).message}`, "check the file with `kubectl config view`", e);
  }
  if (src.context) {
    if (!kc.getContextObject(src.context))
      fail(
        `no context ${src.context} in ${file}`,
        `pick one of: ${
          kc
            .getContexts()
            .map((c) => c.name)
            .join(", ") || "(none)"
        }`,
      );
    kc.setCurrentContext(src.context);
  }
  if (!kc.getCurrentCluster()) fail(`the kubeconfig ${file} has no current cluster`, "set current-context in it, or name a context");
  return { kc, namespace: kc.getContextObject(kc.getCurrentContext())?.namespace ?? "default" };
}
