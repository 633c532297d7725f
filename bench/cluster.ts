/**
 * make bench-cluster ARGS="--runs 3 [--many 12] [--no-single-many]"
 *
 * Runs inside a private network namespace (bench/run.sh makes it). Brings up the e2e test's cluster
 * (test/helpers/cluster-world.ts): the fake API server and the built banger-k8s as processes, three
 * bangerd node agents with QEMU and the Debian image, each in its own namespace, the image registered
 * on node-a and node-b only, node-c pulling it by digest from a docker-registry. Per run:
 *   - single: `banger vm create` on node-a's bangerd to SSH-ready (the baseline, the same machine and run);
 *   - cluster-1: one MicroVM applied, until its status is Running (the agent waits for SSH);
 *   - cluster-N: N MicroVMs applied at once, until all are Running (node-c's copy of the image is
 *     removed first, so every run includes one pull by digest);
 *   - single-N: N `banger vm create`s at once on node-a (unless --no-single-many), the same load on one host.
 * Reports medians and every sample, placement (apply → Placed) and the pull stages. Writes JSON to build/bench/.
 */
import { parseArgs } from "node:util";
import { cpus, loadavg, totalmem } from "node:os";
import { until } from "../test/fakes/kube-apiserver/testkit.js";
import { GUEST, startClusterWorld, type ClusterWorld } from "../test/helpers/cluster-world.js";
import { placement, waitAll } from "../test/helpers/cluster-checks.js";
import { benchNamespace, median, runMain, writeReport } from "./common.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    runs: { type: "string", default: "3" },
    many: { type: "string", default: "12" },
    "no-single-many": { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
const many = Number(values.many);
benchNamespace("cluster.ts", "bench-cluster");
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const HOUR = 3_600_000;

interface ClusterSample {
  /** Apply → the last MicroVM Running (SSH answered on its node). */
  total: number;
  /** Apply → each MicroVM Running, and apply → its placeholder Pod bound by the scheduler. */
  ready: number[];
  placed: number[];
  placement: Record<string, number>;
  pull?: Record<string, number>;
}

async function single(w: ClusterWorld, n: number, tag: string): Promise<number[]> {
  const a = w.node("node-a").d;
  const names = Array.from({ length: n }, (_, i) => `${tag}-${i}`);
  const t0 = performance.now();
  const done = await Promise.all(
    names.map(async (name) => {
      const r = await a.cli(["vm", "create", "--image", "debian-cl", "--name", name, "--vcpus", String(GUEST.vcpus), "--memory", String(GUEST.memoryMib)], {
        timeoutMs: HOUR,
      });
      if (r.code !== 0) throw new Error(`vm create ${name}: ${r.stderr}`);
      return performance.now() - t0;
    }),
  );
  await Promise.all(names.map((name) => a.cli(["vm", "rm", "--force", name], { timeoutMs: 300_000 })));
  return done;
}

async function cluster(w: ClusterWorld, n: number, tag: string): Promise<ClusterSample> {
  const names = Array.from({ length: n }, (_, i) => `${tag}-${String(i).padStart(2, "0")}`);
  const t0 = Date.now();
  const p0 = performance.now();
  await Promise.all(names.map((name) => w.apply(name, {})));
  const all = await waitAll(w, names, (mv) => mv.status?.phase === "Running", HOUR);
  const total = performance.now() - p0;
  const at = (name: string, phase: string) => (w.phases.get(name)?.find((p) => p.phase === phase)?.at ?? NaN) - t0;
  const pulled = all.find((mv) => mv.status.stages.some((s: { name: string }) => s.name.startsWith("pull-")));
  const sample: ClusterSample = {
    total,
    ready: names.map((x) => at(x, "Running")),
    placed: names.map((x) => (w.boundAt.get(`microvm-${x}`) ?? NaN) - t0),
    placement: placement(all),
    ...(pulled
      ? {
          pull: Object.fromEntries(
            (pulled.status.stages as { name: string; ms: number }[]).filter((s) => s.name.startsWith("pull-")).map((s) => [s.name, s.ms]),
          ),
        }
      : {}),
  };
  for (const name of names) await w.remove(name);
  await until("MicroVMs gone", async () => (await Promise.all(names.map((x) => w.get(x)))).every((x) => !x), HOUR);
  return sample;
}

/** node-c forgets the image (no VM uses it now), so the next cluster run pulls it again. */
async function forgetOnC(w: ClusterWorld): Promise<void> {
  const c = w.node("node-c").d;
  const imgs = (await c.cli(["--json", "image", "ls"])).json<{ images: { name: string; digest: string }[] }>().images;
  for (const i of imgs.filter((x) => x.digest === w.digest)) {
    const r = await c.cli(["image", "rm", i.name]);
    if (r.code !== 0) throw new Error(`image rm on node-c: ${r.stderr}`);
  }
}

async function main(): Promise<void> {
  const load0 = loadavg();
  const w = await startClusterWorld({
    nodes: ["node-a", "node-b", "node-c"],
    imageOn: ["node-a", "node-b"],
    microvms: Math.ceil(many / 3) + 1,
    nodeCpu: "8",
    nodeMemory: "8Gi",
    log: (m) => console.log(`# ${m}`),
  });
  const singles: number[] = [];
  const one: ClusterSample[] = [];
  const manyC: ClusterSample[] = [];
  const manyS: number[][] = [];
  let accel = "unknown";
  try {
    const doc = await w.node("node-a").d.cli(["--json", "doctor"], { timeoutMs: 300_000 });
    accel = doc.json<{ checks: { name: string; detail: string }[] }>().checks.find((c) => c.name === "kvm-guest")?.detail ?? accel;
    for (let r = 0; r < runs; r++) {
      const s = (await single(w, 1, `single-${r}`))[0]!;
      singles.push(s);
      console.log(`run ${r + 1}: single vm create→ssh ${fmt(s)}`);
      const c1 = await cluster(w, 1, `one-${r}`);
      one.push(c1);
      console.log(`run ${r + 1}: cluster-1 apply→Running ${fmt(c1.total)} (placed ${fmt(c1.placed[0]!)}, on ${Object.keys(c1.placement).join()})`);
      await forgetOnC(w);
      const cN = await cluster(w, many, `many-${r}`);
      manyC.push(cN);
      console.log(
        `run ${r + 1}: cluster-${many} apply→all Running ${fmt(cN.total)}; placed median ${fmt(median(cN.placed))}; placement ${JSON.stringify(cN.placement)}; pull ${JSON.stringify(cN.pull ?? {})}`,
      );
      console.log(`   per MicroVM apply→Running: ${cN.ready.map(fmt).join(", ")}`);
      if (!values["no-single-many"]) {
        const sN = await single(w, many, `singles-${r}`);
        manyS.push(sN);
        console.log(`run ${r + 1}: single-${many} on node-a, all ssh-ready ${fmt(Math.max(...sN))}; each: ${sN.map(fmt).join(", ")}`);
      }
    }
  } finally {
    await w.destroy();
  }
  const m1 = median(one.map((x) => x.total));
  const mS = median(singles);
  const mN = median(manyC.map((x) => x.total));
  const mSN = median(manyS.map((x) => Math.max(...x)));
  const pullStages = [...new Set(manyC.flatMap((x) => Object.keys(x.pull ?? {})))];
  const pullMed = Object.fromEntries(pullStages.map((s) => [s, median(manyC.map((x) => x.pull?.[s] ?? NaN))]));
  const machine = { cpus: cpus().length, model: cpus()[0]?.model, memGib: +(totalmem() / 2 ** 30).toFixed(1), accel };
  const load1 = loadavg();
  console.log(`\n== bench-cluster: ${runs} run(s), ${many} MicroVMs, 3 nodes, guests ${GUEST.vcpus} vCPU / ${GUEST.memoryMib} MiB; ${JSON.stringify(machine)}`);
  console.log(`   load average before ${load0.map((x) => x.toFixed(2)).join("/")}, after ${load1.map((x) => x.toFixed(2)).join("/")}`);
  console.log(`  single vm create→ssh-ready          median ${fmt(mS)}  [${singles.map(fmt).join(", ")}]`);
  console.log(`  cluster-1 apply→Running (ssh)        median ${fmt(m1)}  [${one.map((x) => fmt(x.total)).join(", ")}]  ratio ${(m1 / mS).toFixed(2)}`);
  console.log(`  cluster-1 apply→bound               median ${fmt(median(one.map((x) => x.placed[0]!)))}`);
  console.log(
    `  cluster-${many} apply→all Running       median ${fmt(mN)}  [${manyC.map((x) => fmt(x.total)).join(", ")}]  ratio vs single-1 ${(mN / mS).toFixed(2)}`,
  );
  console.log(`  cluster-${many} apply→bound (all)      median ${fmt(median(manyC.flatMap((x) => x.placed)))}`);
  if (manyS.length)
    console.log(
      `  single-${many} on one node, all ready    median ${fmt(mSN)}  [${manyS.map((x) => fmt(Math.max(...x))).join(", ")}]  cluster/single ${(mN / mSN).toFixed(2)}`,
    );
  console.log(`  pull by digest on node-c (median)    ${pullStages.map((s) => `${s}=${pullMed[s]} ms`).join(" ")}`);
  writeReport("cluster", {
    runs,
    many,
    guest: GUEST,
    machine,
    load: { before: load0, after: load1 },
    singles,
    one,
    manyCluster: manyC,
    manySingle: manyS,
    medians: { single: mS, cluster1: m1, clusterN: mN, singleN: mSN, pull: pullMed },
  });
}

runMain(main);
