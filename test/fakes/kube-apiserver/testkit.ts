// Helpers for tests that drive the fake API server with the real @kubernetes/client-node.
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { setTimeout as sleep } from "node:timers/promises";
import { FakeKubeApiServer, type FakeKubeOptions } from "./server.js";
import { SwaggerSchemas } from "./schema.js";

let shared: SwaggerSchemas | undefined;
/** The swagger validators compile lazily and are costly; tests in one file share one set. */
export const swagger = () => (shared ??= new SwaggerSchemas());

export function kubeConfig(url: string, token = "test-token"): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
    users: [{ name: "tester", token }],
    contexts: [{ name: "fake", cluster: "fake", user: "tester", namespace: "default" }],
    currentContext: "fake",
  });
  return kc;
}

export interface Kit {
  server: FakeKubeApiServer;
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
}

export async function startKit(opts: FakeKubeOptions = {}): Promise<Kit> {
  const server = await FakeKubeApiServer.start({ token: "test-token", ...opts }, swagger());
  const kc = kubeConfig(server.url);
  return { server, kc, core: kc.makeApiClient(CoreV1Api), custom: kc.makeApiClient(CustomObjectsApi) };
}

export const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
export const strategicPatch = setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch);
export const jsonPatch = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);

/** Polls fn until it returns a truthy value; the deadline only bounds a hung test, it asserts nothing about time. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The HTTP status and parsed Status body of a rejected client call. */
export async function rejection(p: Promise<unknown>): Promise<{ code: number; body: { reason?: string; message?: string; code?: number; details?: any } }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: number; body?: unknown };
    if (typeof err.code !== "number") throw e;
    const body = typeof err.body === "string" ? (JSON.parse(err.body) as object) : ((err.body ?? {}) as object);
    return { code: err.code, body };
  }
  throw new Error("expected the API server to reject the call");
}

export function nodeBody(
  name: string,
  alloc: Record<string, string>,
  extra: { labels?: Record<string, string>; taints?: { key: string; value?: string; effect: string }[]; ready?: boolean; unschedulable?: boolean } = {},
) {
  return {
    metadata: { name, labels: { "kubernetes.io/hostname": name, ...(extra.labels ?? {}) } },
    spec: { ...(extra.taints ? { taints: extra.taints } : {}), ...(extra.unschedulable ? { unschedulable: true } : {}) },
    status: {
      capacity: alloc,
      allocatable: alloc,
      conditions: [{ type: "Ready", status: extra.ready === false ? "False" : "True", reason: "KubeletReady", message: "kubelet is posting ready status" }],
    },
  };
}

/** The MicroVM CRD as issue 20 describes it (group banger.dev, v1alpha1, status subresource). */
export const MICROVM_CRD = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "microvms.banger.dev" },
  spec: {
    group: "banger.dev",
    scope: "Namespaced",
    names: { plural: "microvms", singular: "microvm", kind: "MicroVM", shortNames: ["mvm"] },
    versions: [
      {
        name: "v1alpha1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: {
                type: "object",
                required: ["image"],
                properties: {
                  image: { type: "string" },
                  vcpus: { type: "integer", minimum: 1, default: 1 },
                  memoryMib: { type: "integer", minimum: 64, default: 512 },
                  nat: { type: "boolean" },
                  ports: { type: "array", items: { type: "integer" } },
                  ttlSeconds: { type: "integer" },
                  extra: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
                },
              },
              status: {
                type: "object",
                properties: {
                  phase: { type: "string", enum: ["Pending", "Placed", "Pulling", "Creating", "Running", "Failed", "Deleting", "NodeLost"] },
                  node: { type: "string" },
                  ip: { type: "string" },
                  lastError: { type: "string" },
                },
              },
            },
          },
        },
      },
    ],
  },
};

export const MVM = { group: "banger.dev", version: "v1alpha1", plural: "microvms" };

/** The placeholder Pod for a MicroVM as docs/scale-out design names it. */
export function placeholderPod(mvm: { metadata: { name: string; uid: string } }, vcpus: number, memoryMib: number) {
  const res = { cpu: String(vcpus), memory: `${memoryMib}Mi`, "banger.dev/microvm": "1" };
  return {
    metadata: {
      name: `microvm-${mvm.metadata.name}`,
      annotations: { "banger.dev/microvm-uid": mvm.metadata.uid },
      ownerReferences: [
        { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", name: mvm.metadata.name, uid: mvm.metadata.uid, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      containers: [{ name: "pause", image: "registry.k8s.io/pause:3.10", resources: { requests: res, limits: res } }],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: "banger.dev/node", operator: "In", values: ["true"] }] }],
          },
        },
      },
      tolerations: [{ key: "banger.dev/microvm", operator: "Exists", effect: "NoSchedule" }],
    },
  };
}

/**
 * A request with a hand-written JSON body. The typed clients drop fields their models do not know, so a test of
 * what the server does with an unknown field has to send it the way kubectl would.
 */
export async function raw(
  kit: Kit,
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<{ code: number; body: any; headers: Headers }> {
  const res = await fetch(`${kit.server.url}${path}`, {
    method,
    headers: { Authorization: "Bearer test-token", "Content-Type": contentType },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { code: res.status, body: await res.json(), headers: res.headers };
}
