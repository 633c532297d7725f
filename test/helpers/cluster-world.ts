// A small banger cluster on one host, for the e2e test and `make bench-cluster`: the strict fake API
// server and the built banger-k8s as processes, a docker-registry, and N real bangerd node agents (QEMU,
// the built Debian image), each in its own network namespace with its own guest subnet. The API server
// and the registry listen on the root namespace's loopback; each node reaches them through
// kube-bridge's Unix-socket relay, so no interface or route is touched outside the namespaces.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Watch } from "@kubernetes/client-node";
import { DEFAULT_BOOT_ARGS } from "../../src/app/images.js";
import { MVM, nodeBody, until } from "../fakes/kube-apiserver/testkit.js";
import { REPO, runIn, startTestDaemon, testConfig, type TestDaemon } from "./daemon.js";
import { builtDebianImage, registerArgs } from "./guest-image.js";
import { startRegistry } from "./image-registry.js";
import { bridgeIntoNetns } from "./kube-bridge.js";
import { controllerProcess, startKubeProcess, type ControllerProcess, type KubeProcess } from "./kube-process.js";
import { hostLeftovers } from "./leaks.js";
import { createNetns, type Netns } from "./netns.js";

const NS_KUBE_PORT = 18443;
const NS_REGISTRY_PORT = 15000;
/** The repository nodes pull a digest they lack from (images.sources, through the bridge into their namespace). */
export const REGISTRY_REPO = `oci://127.0.0.1:${NS_REGISTRY_PORT}/banger`;

export interface NodeVm {
  name: string;
  state: string;
  ip?: string;
  externalId?: string;
  imageName?: string;
}

export interface WorldNode {
  name: string;
  ns: Netns;
  d: TestDaemon;
  dir: string;
  vms(): Promise<NodeVm[]>;
  /** VMs the agent made (external id k8s:<uid>). */
  k8sVms(): Promise<NodeVm[]>;
  /** verify.sh (leaks against bangerd's own records) and the VMM processes beyond its running VMs. */
  leaks(): Promise<string[]>;
  /** False between crash() and restart(). */
  up: boolean;
  /** kill -9 of bangerd, as a crash or a lost host. */
  crash(): Promise<void>;
  restart(): Promise<void>;
}

export interface WorldOptions {
  nodes: string[];
  /** Nodes the Debian image is registered on; the others pull it by digest from the registry. */
  imageOn: string[];
  /** cluster.microvms per node. */
  microvms: number;
  /** The kubelet's allocatable cpu and memory on each Node. */
  nodeCpu: string;
  nodeMemory: string;
  resyncS?: number;
  /** cluster.max_parallel_creates per node (1 unless said: three nodes share this host's cores). */
  maxParallelCreates?: number;
  log?: (msg: string) => void;
}

export interface ClusterWorld {
  dir: string;
  kube: KubeProcess;
  controller: ControllerProcess;
  registry: Awaited<ReturnType<typeof startRegistry>>;
  nodes: WorldNode[];
  node(name: string): WorldNode;
  /** The banger digest of the Debian image registered on `imageOn`. */
  digest: string;
  apply(name: string, spec: Record<string, unknown>): Promise<string>;
  get(name: string): Promise<any>;
  list(): Promise<any[]>;
  remove(name: string): Promise<void>;
  /** Pod watch events since the world started, to tell "placed once" from "placed, deleted, placed again". */
  podEvents: { type: string; name: string }[];
  /** When each placeholder Pod was first seen bound (epoch ms): the scheduler's placement. */
  boundAt: Map<string, number>;
  /** Every phase each MicroVM was seen in (with its Ready reason), in order, with when the watch saw it (epoch ms). */
  phases: Map<string, { phase: string; reason?: string; at: number }[]>;
  destroy(): Promise<void>;
}

export const GUEST = { vcpus: 1, memoryMib: 256 };
/**
 * The image's opencode server is masked: its cold start under TCG costs minutes of CPU per guest, and twelve
 * of them on two cores starve every boot (measured: no guest SSH-ready 14 min after the apply). SSH is what
 * these guests are for.
 */
const BOOT_ARGS = `${DEFAULT_BOOT_ARGS} systemd.mask=opencode.service`;

async function startNode(
  name: string,
  index: number,
  o: { kubeUrl: string; registryHost: string; token: string; microvms: number; resyncS: number; maxParallelCreates?: number },
) {
  const ns = await createNetns(`cl${name}`);
  const dir = mkdtempSync(join(tmpdir(), `banger-cluster-${name}-`));
  chmodSync(dir, 0o711);
  writeFileSync(join(dir, "kube-token"), `${o.token}\n`, { mode: 0o600 });
  const kurl = new URL(o.kubeUrl);
  const kube = await bridgeIntoNetns(ns, dir, { host: kurl.hostname, port: Number(kurl.port) }, NS_KUBE_PORT);
  const [rhost, rport] = o.registryHost.split(":");
  const reg = await bridgeIntoNetns(ns, dir, { host: rhost!, port: Number(rport) }, NS_REGISTRY_PORT, "registry-bridge.sock");
  const config =
    testConfig(dir, {
      vmm: "qemu",
      subnet: `172.30.${index + 1}.0/24`,
      memory_mib: GUEST.memoryMib,
      work_disk_gib: 2,
      tap_pool_size: 2,
      // Three nodes share this host's cores: each boots one guest at a time (max_parallel_creates below),
      // so at most three TCG boots run at once. These deadlines only bound a hung boot.
      ssh_timeout_s: 900,
      op_timeout_s: 1200,
    }) +
    `[cluster]\nenabled = true\nserver = "${kube.url}"\ntoken_file = "${join(dir, "kube-token")}"\nnode_name = "${name}"\n` +
    `microvms = ${o.microvms}\nmax_parallel_creates = ${o.maxParallelCreates ?? 1}\nwait_ssh = true\nresync_s = ${o.resyncS}\n` +
    `[images]\nsources = ["${REGISTRY_REPO}"]\n`;
  const d = await startTestDaemon({ ns, dir, configText: config });
  const vms = async () => {
    const r = await d.cli(["--json", "vm", "ls"], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`vm ls on ${name}: ${r.stderr}`);
    return r.json<{ vms: NodeVm[] }>().vms;
  };
  const node: WorldNode & { bridges: { close(): Promise<void> }[] } = {
    name,
    ns,
    d,
    dir,
    bridges: [kube, reg],
    vms,
    up: true,
    async crash() {
      node.up = false;
      await d.crash();
    },
    async restart() {
      await d.start();
      node.up = true;
    },
    k8sVms: async () => (await vms()).filter((v) => v.externalId?.startsWith("k8s:")),
    async leaks() {
      const out: string[] = [];
      const v = await runIn(ns, join(REPO, "verify.sh"), [], { env: { BANGER_CONFIG: d.configPath }, timeoutMs: 120_000 });
      if (v.code !== 0) out.push(`${name}: verify.sh: ${v.stdout.trim()} ${v.stderr.trim()}`);
      const running = (await vms()).filter((x) => x.state === "running" || x.state === "creating" || x.state === "starting").length;
      const left = await hostLeftovers(ns);
      if (left.vmmProcesses.length > running)
        out.push(`${name}: ${left.vmmProcesses.length} VMM processes for ${running} live VMs: ${left.vmmProcesses.join(", ")}`);
      return out;
    },
  };
  return node;
}

/** Brings the cluster up: API server + CRD, registry, Nodes as a kubelet registers them, the agents, the image, the controller. */
export async function startClusterWorld(o: WorldOptions): Promise<ClusterWorld> {
  const log = o.log ?? (() => undefined);
  const img = builtDebianImage();
  if (!img) throw new Error("no Debian image under build/images/debian: run `make image-debian`");
  const dir = mkdtempSync(join(tmpdir(), "banger-cluster-"));
  chmodSync(dir, 0o711);
  const kube = await startKubeProcess();
  const registry = await startRegistry(dir);
  const podEvents: { type: string; name: string }[] = [];
  const boundAt = new Map<string, number>();
  const podWatch = await new Watch(kube.kc).watch(
    "/api/v1/pods",
    { resourceVersion: "0" },
    (type, obj: { metadata: { name: string }; spec?: { nodeName?: string } }) => {
      podEvents.push({ type, name: obj.metadata.name });
      if (obj.spec?.nodeName && type !== "DELETED" && !boundAt.has(obj.metadata.name)) boundAt.set(obj.metadata.name, Date.now());
    },
    () => undefined,
  );
  const phases = new Map<string, { phase: string; reason?: string; at: number }[]>();
  const mvWatch = await new Watch(kube.kc).watch(
    "/apis/banger.dev/v1alpha1/microvms",
    { resourceVersion: "0" },
    (_type, obj: { metadata: { name: string }; status?: { phase?: string; conditions?: { type: string; reason?: string }[] } }) => {
      const seen = phases.get(obj.metadata.name) ?? [];
      const p = obj.status?.phase;
      const reason = obj.status?.conditions?.find((c) => c.type === "Ready")?.reason;
      if (p && (seen.at(-1)?.phase !== p || seen.at(-1)?.reason !== reason)) seen.push({ phase: p, reason, at: Date.now() });
      phases.set(obj.metadata.name, seen);
    },
    () => undefined,
  );
  // As a kubelet would: the Node exists before the agent starts, with the host's cpu and memory as the kubelet counts them.
  for (const name of o.nodes) await kube.core.createNode({ body: nodeBody(name, { cpu: o.nodeCpu, memory: o.nodeMemory, pods: "110" }) as never });
  const nodes: Awaited<ReturnType<typeof startNode>>[] = [];
  const controller = controllerProcess(kube, dir);
  const world: ClusterWorld = {
    dir,
    kube,
    controller,
    registry,
    nodes,
    node: (name) => nodes.find((n) => n.name === name)!,
    digest: "",
    podEvents,
    boundAt,
    phases,
    apply: async (name, spec) => {
      const body = { apiVersion: "banger.dev/v1alpha1", kind: "MicroVM", metadata: { name }, spec: { image: world.digest, ...GUEST, ...spec } };
      const mv = (await kube.custom.createNamespacedCustomObject({ ...MVM, namespace: "default", body })) as { metadata: { uid: string } };
      return mv.metadata.uid;
    },
    get: (name) =>
      kube.custom.getNamespacedCustomObject({ ...MVM, namespace: "default", name }).catch((e: { code?: number }) => {
        if (e.code === 404) return undefined;
        throw e;
      }),
    list: async () => ((await kube.custom.listNamespacedCustomObject({ ...MVM, namespace: "default" })) as { items: any[] }).items,
    remove: async (name) => {
      await kube.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name });
    },
    async destroy() {
      podWatch.abort();
      mvWatch.abort();
      await controller.stop().catch(() => undefined);
      for (const n of nodes) {
        await n.d.destroy().catch(() => undefined);
        for (const b of n.bridges) await b.close();
        await n.ns.destroy();
      }
      await registry.stop();
      await kube.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const token = kube.token;
    const started = await Promise.all(
      o.nodes.map((name, i) =>
        startNode(name, i, {
          kubeUrl: kube.url,
          registryHost: registry.host,
          token,
          microvms: o.microvms,
          resyncS: o.resyncS ?? 5,
          maxParallelCreates: o.maxParallelCreates,
        }),
      ),
    );
    nodes.push(...started);
    log(`nodes up: ${o.nodes.join(", ")}`);
    // The same boot set registered on each `imageOn` node: the same digest everywhere (it is content-addressed).
    const digests = await Promise.all(
      o.imageOn.map(async (name) => {
        const d = world.node(name).d;
        const reg = await d.cli([...registerArgs(img, "debian-cl", { services: false }), "--boot-args", BOOT_ARGS], { timeoutMs: 600_000 });
        if (reg.code !== 0) throw new Error(`image register on ${name}: ${reg.stderr}`);
        return (await d.cli(["--json", "image", "show", "debian-cl"])).json<{ image: { digest: string } }>().image.digest;
      }),
    );
    if (new Set(digests).size !== 1) throw new Error(`one boot set, several digests: ${digests.join(" ")}`);
    world.digest = digests[0]!;
    const push = await world.node(o.imageOn[0]!).d.cli(["image", "push", "debian-cl", `${REGISTRY_REPO}:debian-12`], { timeoutMs: 600_000 });
    if (push.code !== 0) throw new Error(`image push: ${push.stderr}`);
    log(`image ${world.digest} on ${o.imageOn.join(", ")}, pushed to the registry`);
    // The agents advertise capacity; the controller starts once every node can take MicroVMs.
    await until(
      "nodes registered",
      async () => {
        const items = (await kube.core.listNode()).items;
        return o.nodes.every((n) => items.find((x) => x.metadata?.name === n)?.status?.allocatable?.["banger.dev/microvm"] === String(o.microvms));
      },
      120_000,
    );
    controller.start();
    return world;
  } catch (e) {
    await world.destroy();
    throw e;
  }
}

/** Problems with what every MicroVM's status claims against what the nodes really run; empty when all true. */
export async function statusProblems(w: ClusterWorld): Promise<string[]> {
  const out: string[] = [];
  const byNode = new Map<string, NodeVm[]>();
  for (const n of w.nodes) byNode.set(n.name, n.up ? await n.k8sVms() : []);
  for (const mv of await w.list()) {
    const name = mv.metadata.name as string;
    const here = [...byNode.entries()].flatMap(([node, vms]) => vms.filter((v) => v.externalId === `k8s:${mv.metadata.uid}`).map((v) => ({ node, v })));
    const s = mv.status ?? {};
    if (here.length > 1) out.push(`${name}: ${here.length} VMs (${here.map((h) => `${h.node}/${h.v.name}`).join(", ")})`);
    if (s.phase === "Running") {
      const h = here[0];
      if (!h) out.push(`${name}: Running on ${s.node} but no node has its VM`);
      else if (h.node !== s.node || h.v.ip !== s.ip || h.v.name !== s.vmName || h.v.state !== "running")
        out.push(`${name}: status ${s.node}/${s.vmName}/${s.ip} but ${h.node}/${h.v.name}/${h.v.ip} is ${h.v.state}`);
    } else if (["Pending", "Failed"].includes(s.phase) && here.some((h) => h.v.state === "running")) {
      out.push(`${name}: ${s.phase} but ${here[0]!.node} runs ${here[0]!.v.name}`);
    }
  }
  return out;
}

/** Everything leaked on any node (verify.sh, VMM processes), empty when clean. */
export async function worldLeaks(w: ClusterWorld): Promise<string[]> {
  return (await Promise.all(w.nodes.filter((n) => n.up).map((n) => n.leaks()))).flat();
}
