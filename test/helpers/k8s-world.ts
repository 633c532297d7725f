// A fake API server with the MicroVM CRD from deploy/k8s and bangerd-labelled nodes, and an in-process
// banger-k8s controller wired the way src/k8s/main.ts wires it.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Writable } from "node:stream";
import pino, { type Logger } from "pino";
import { parseAllDocuments } from "yaml";
import { kubeClients } from "../../src/adapters/k8s/client.js";
import { KubeClusterControl } from "../../src/adapters/k8s/control.js";
import { ClusterController, type ControllerPolicy, DEFAULT_POLICY } from "../../src/app/cluster-controller.js";
import type { ClusterControl } from "../../src/ports/cluster-control.js";
import { type Kit, MVM, nodeBody, raw, startKit, until } from "../fakes/kube-apiserver/testkit.js";

export const DEPLOY = resolve(import.meta.dirname, "../../deploy/k8s");

export function manifests(file: string): any[] {
  return parseAllDocuments(readFileSync(resolve(DEPLOY, file), "utf8")).map((d) => d.toJS() as unknown);
}

/** Starts the fake and installs the CRD exactly as `kubectl apply -f deploy/k8s/microvm-crd.yaml` would send it. */
export async function startWorld(): Promise<Kit> {
  const kit = await startKit();
  const res = await raw(kit, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", manifests("microvm-crd.yaml")[0]);
  if (res.code !== 201) throw new Error(`CRD refused: ${JSON.stringify(res.body)}`);
  return kit;
}

export async function addNode(kit: Kit, name: string, alloc: { cpu: string; memory: string; microvms: string }, ready = true) {
  const body = nodeBody(
    name,
    { cpu: alloc.cpu, memory: alloc.memory, "banger.dev/microvm": alloc.microvms, pods: "110" },
    { labels: { "banger.dev/node": "true" }, taints: [{ key: "banger.dev/microvm", effect: "NoSchedule" }], ready },
  );
  await kit.core.createNode({ body: body as never });
}

export function microVm(name: string, spec: Record<string, unknown> = {}) {
  return { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", metadata: { name }, spec: { image: "debian", vcpus: 1, memoryMib: 512, ...spec } };
}

export async function applyVm(kit: Kit, name: string, spec: Record<string, unknown> = {}, namespace = "default"): Promise<any> {
  return kit.custom.createNamespacedCustomObject({ ...MVM, namespace, body: microVm(name, spec) });
}

export async function getVm(kit: Kit, name: string, namespace = "default"): Promise<any> {
  return kit.custom.getNamespacedCustomObject({ ...MVM, namespace, name }).catch((e: { code?: number }) => {
    if (e.code === 404) return undefined;
    throw e;
  });
}

export function vmPhase(kit: Kit, name: string, phase: string) {
  return until(`${name} ${phase}`, async () => {
    const vm = await getVm(kit, name);
    return vm?.status?.phase === phase ? vm : undefined;
  });
}

/** Log lines of a controller, for tests that check a path (a relist) was really taken. */
export class LogLines {
  readonly lines: any[] = [];
  readonly log: Logger = pino(
    { level: "debug" },
    new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        for (const l of chunk.toString().split("\n").filter(Boolean)) this.lines.push(JSON.parse(l));
        cb();
      },
    }),
  );
  has(msg: string): boolean {
    return this.lines.some((l) => l.msg === msg);
  }
}

export interface Running {
  stop(): Promise<void>;
  logs: LogLines;
}

export function startController(kit: Kit, policy: Partial<ControllerPolicy> = {}, wrap: (c: ClusterControl) => ClusterControl = (c) => c): Running {
  const logs = new LogLines();
  const ac = new AbortController();
  const control = wrap(new KubeClusterControl(kubeClients(kit.kc, 5000), logs.log));
  const done = new ClusterController(control, logs.log, { ...DEFAULT_POLICY, resyncMs: 200, ...policy }).run(ac.signal);
  return {
    logs,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}
