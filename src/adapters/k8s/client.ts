import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type RequestContext,
  type ResponseContext,
  ServerConfiguration,
  createConfiguration,
} from "@kubernetes/client-node";
import { BangerError } from "../../domain/errors.js";
import { MICROVM_GROUP, MICROVM_PLURAL, MICROVM_VERSION } from "../../domain/microvm.js";

/** Bounds every request of the typed clients; a hung API server fails the call instead of the caller. */
function timeoutMiddleware(ms: number): { pre(c: RequestContext): Promise<RequestContext>; post(r: ResponseContext): Promise<ResponseContext> } {
  return {
    pre: (ctx: RequestContext) => {
      ctx.setSignal(AbortSignal.timeout(ms));
      return Promise.resolve(ctx);
    },
    post: (res: ResponseContext) => Promise.resolve(res),
  };
}

export interface KubeClients {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
}

export const DEFAULT_REQUEST_MS = 15_000;

/** Typed clients that share the kubeconfig's credentials and a per-request deadline. */
export function kubeClients(kc: KubeConfig, requestMs = DEFAULT_REQUEST_MS): KubeClients {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new BangerError("INVALID_CONFIG", "the kubeconfig has no current cluster", { hint: "set current-context" });
  const config = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    promiseMiddleware: [timeoutMiddleware(requestMs)],
  });
  return { kc, core: new CoreV1Api(config), custom: new CustomObjectsApi(config) };
}

export const MVM = { group: MICROVM_GROUP, version: MICROVM_VERSION, plural: MICROVM_PLURAL };

/** The HTTP status of a failed client call (ApiException carries `code`), or undefined for a transport error. */
export function statusOf(e: unknown): number | undefined {
  const code = (e as { code?: unknown }).code;
  return typeof code === "number" ? code : undefined;
}

/** The API server's own message from a failed call's Status body. */
export function messageOf(e: unknown): string {
  const body = (e as { body?: unknown }).body;
  try {
    const parsed = typeof body === "string" ? (JSON.parse(body) as { message?: string }) : (body as { message?: string } | undefined);
    if (parsed?.message) return parsed.message;
  } catch {
    // Not JSON: fall through to the error's own text.
  }
  return (e as Error).message ?? String(e);
}

/** A failure talking to the API server, as a coded error the CLI and logs can name. */
export function clusterError(what: string, e: unknown): BangerError {
  if (e instanceof BangerError) return e;
  const status = statusOf(e);
  if (status === 401 || status === 403)
    return new BangerError("FORBIDDEN", `${what}: the API server refused (${status}): ${messageOf(e)}`, {
      hint: "check the credentials and the RBAC in deploy/k8s/rbac.yaml",
      cause: e,
    });
  return new BangerError("CLUSTER_UNREACHABLE", `${what}: ${status ? `HTTP ${status}: ` : ""}${messageOf(e)}`, {
    hint: "check that the API server is reachable and the MicroVM CRD is installed (kubectl apply -f deploy/k8s/microvm-crd.yaml)",
    cause: e,
  });
}
