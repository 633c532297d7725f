// The fake API server and the built banger-k8s controller as their own processes, for e2e tests and
// benchmarks that put real bangerd nodes beside them (test/helpers/cluster-world.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { kubeConfig, type Kit } from "../fakes/kube-apiserver/testkit.js";
import { manifests } from "./k8s-world.js";
import { REPO } from "./daemon.js";

const FAKE_MAIN = resolve(REPO, "test/fakes/kube-apiserver/main.ts");
const VITE_NODE = resolve(REPO, "node_modules/.bin/vite-node");
export const CONTROLLER_BUNDLE = resolve(REPO, "build/bundle/banger-k8s.js");

export interface KubeProcess extends Omit<Kit, "server"> {
  url: string;
  token: string;
  /** The fake's own self-check failures and controller errors (GET /_fake/problems); tests assert it is empty. */
  problems(): Promise<string[]>;
  /** A request with a hand-written body, as kubectl would send it. */
  raw(method: string, path: string, body?: unknown): Promise<{ code: number; body: any }>;
  stop(): Promise<void>;
}

const exited = (p: ChildProcess) => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once("exit", () => r())));

/** Starts test/fakes/kube-apiserver as a process on loopback and installs deploy/k8s's CRD as `kubectl apply` would. */
export async function startKubeProcess(token = "e2e-token"): Promise<KubeProcess> {
  const child = spawn(VITE_NODE, [FAKE_MAIN, "--", "--listen", "127.0.0.1:0", "--token", token, "--bookmark-interval-ms", "1000", "--history", "20000"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout! }).once("line", ok);
    child.once("exit", (code) => fail(new Error(`the fake API server exited with ${code} before it listened`)));
  });
  const { url } = JSON.parse(line) as { url: string };
  const kc = kubeConfig(url, token);
  const raw = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    return { code: res.status, body: (await res.json()) as any };
  };
  const crd = await raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", manifests("microvm-crd.yaml")[0]);
  if (crd.code !== 201) throw new Error(`the CRD was refused: ${JSON.stringify(crd.body)}`);
  return {
    url,
    token,
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    raw,
    problems: async () => ((await raw("GET", "/_fake/problems")).body as { problems: string[] }).problems,
    stop: async () => {
      child.kill("SIGTERM");
      await exited(child);
    },
  };
}

export interface ControllerProcess {
  /** Every line it logged, across restarts (JSON). */
  readonly lines: any[];
  start(): void;
  /** SIGKILL, as a crashed Pod. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** The built banger-k8s (`make build`) against the fake, outside the cluster: --server and --token-file. */
export function controllerProcess(kube: KubeProcess, dir: string, resyncS = 2): ControllerProcess {
  const tokenFile = join(dir, "controller-token");
  writeFileSync(tokenFile, `${kube.token}\n`, { mode: 0o600 });
  let proc: ChildProcess | undefined;
  const lines: any[] = [];
  return {
    lines,
    start() {
      proc = spawn(process.execPath, [CONTROLLER_BUNDLE, "--server", kube.url, "--token-file", tokenFile, "--resync", String(resyncS)], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      createInterface({ input: proc.stdout! }).on("line", (l) => {
        try {
          lines.push(JSON.parse(l));
        } catch {
          lines.push({ msg: l });
        }
      });
      proc.stderr!.on("data", (b: Buffer) => lines.push({ stderr: b.toString() }));
    },
    async kill() {
      if (!proc) return;
      proc.kill("SIGKILL");
      await exited(proc);
    },
    async stop() {
      if (!proc) return;
      proc.kill("SIGTERM");
      await exited(proc);
    },
  };
}
