#!/usr/bin/env node
// banger-k8s: the scale-out controller (docs/scale-out.md). One replica; it is restart-safe, not
// leader-elected. Wiring only: the reconcile logic is src/app/cluster-controller.ts.
import { Command, InvalidArgumentError } from "commander";
import pino from "pino";
import { kubeClients } from "../adapters/k8s/client.js";
import { KubeClusterControl } from "../adapters/k8s/control.js";
import { loadKube } from "../adapters/k8s/kubeconfig.js";
import { ClusterController, DEFAULT_POLICY } from "../app/cluster-controller.js";
import { asBangerError } from "../domain/errors.js";
import { VERSION } from "../version.js";

const seconds = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError("expected a positive number of seconds");
  return n;
};

interface Opts {
  kubeconfig?: string;
  context?: string;
  inCluster?: boolean;
  server?: string;
  tokenFile?: string;
  caFile?: string;
  nodeLostGrace: number;
  resync: number;
  requestTimeout: number;
  priorityClass?: string;
  logLevel: string;
}

async function main(): Promise<number> {
  const program = new Command("banger-k8s")
    .description("banger's Kubernetes controller: places MicroVMs through placeholder Pods and mirrors placement into their status")
    .version(VERSION)
    .option("--kubeconfig <file>", "kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
    .option("--context <name>", "context in the kubeconfig (default its current-context)")
    .option("--in-cluster", "use the Pod's service account (the Deployment in deploy/k8s/controller.yaml does)")
    .option("--server <url>", "API server URL, with --token-file (instead of a kubeconfig)")
    .option("--token-file <file>", "bearer token for --server")
    .option("--ca-file <file>", "CA certificate of --server")
    .option(
      "--node-lost-grace <s>",
      "seconds a node may be NotReady before its MicroVMs are NodeLost and placed again",
      seconds,
      DEFAULT_POLICY.nodeLostGraceMs / 1000,
    )
    .option("--resync <s>", "seconds between passes over all MicroVMs without an event", seconds, DEFAULT_POLICY.resyncMs / 1000)
    .option("--request-timeout <s>", "deadline of each API request", seconds, 15)
    .option("--priority-class <name>", "PriorityClass of placeholder Pods (default: none)")
    .option("--log-level <level>", "trace, debug, info, warn or error", "info");
  program.parse();
  const o = program.opts<Opts>();
  const log = pino({ level: o.logLevel, base: { pid: process.pid, component: "banger-k8s" }, timestamp: pino.stdTimeFunctions.isoTime });
  try {
    const { kc } = loadKube({
      kubeconfig: o.kubeconfig,
      context: o.context,
      inCluster: o.inCluster,
      server: o.server,
      tokenFile: o.tokenFile,
      caFile: o.caFile,
    });
    const control = new KubeClusterControl(kubeClients(kc, o.requestTimeout * 1000), log, { priorityClassName: o.priorityClass });
    const policy = { ...DEFAULT_POLICY, nodeLostGraceMs: o.nodeLostGrace * 1000, resyncMs: o.resync * 1000 };
    const ac = new AbortController();
    for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => ac.abort());
    log.info({ stage: "start", server: kc.getCurrentCluster()?.server, policy }, "controller starting");
    await new ClusterController(control, log, policy).run(ac.signal);
    log.info({ stage: "stop" }, "controller stopped");
    return 0;
  } catch (e) {
    const err = asBangerError(e);
    log.error({ stage: "start", code: err.code, hint: err.hint, err: err.message }, "controller failed");
    return 1;
  }
}

void main().then((code) => process.exit(code));
