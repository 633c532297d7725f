/**
 * make bench-build ARGS="--runs 2 [--vmm qemu|firecracker] [--rootfs-size 2G]"
 *
 * Runs inside a private network namespace (bench/run.sh makes it). Starts a real bangerd,
 * registers the built Debian image (SSH only), and runs N `banger image build`s of a one-line
 * step (`echo hi > /root/hello`): per-stage medians from the build's stream. The baseline, in
 * the same run, is a `vm create` of the base to SSH-ready, the boot a build cannot avoid; the
 * ratio says what a build costs on top of it. Writes JSON to build/bench/.
 */
import { parseArgs } from "node:util";
import { startTestDaemon } from "../test/helpers/daemon.js";
import { builtDebianImage, registerArgs } from "../test/helpers/guest-image.js";
import { benchNamespace, median, runMain, writeReport } from "./common.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    runs: { type: "string", default: "1" },
    vmm: { type: "string", default: "qemu" },
    "rootfs-size": { type: "string" },
  },
});
const runs = Number(values.runs);
const here = benchNamespace("build.ts", "bench-build");
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

async function main(): Promise<void> {
  const img = builtDebianImage();
  if (!img) {
    console.error("no Debian image under build/images/debian: run `make image-debian` first");
    process.exit(2);
  }
  const d = await startTestDaemon({ ns: here, config: { vmm: values.vmm!, memory_mib: 1024, work_disk_gib: 2, vcpus: 2, disk_pool_size: 0 } });
  const builds: Record<string, number>[] = [];
  const creates: number[] = [];
  try {
    const reg = await d.cli(registerArgs(img, "bench-base", { services: false }), { timeoutMs: 600_000 });
    if (reg.code !== 0) throw new Error(`register failed: ${reg.stderr}`);
    for (let i = 0; i < runs; i++) {
      const name = `bench-built-${i}`;
      const size = values["rootfs-size"] ? ["--rootfs-size", values["rootfs-size"]] : [];
      const r = await d.cli(["--json", "image", "build", "--from", "bench-base", "--name", name, "--run", "echo hi > /root/hello", ...size], {
        timeoutMs: 1_800_000,
      });
      if (r.code !== 0) throw new Error(`build failed: ${r.stderr}${r.stdout}`);
      const events = r.json<{ events: { stage: string; status: string; ms?: number }[] }>().events.filter((e) => e.status === "done");
      const sample: Record<string, number> = Object.fromEntries(events.map((e) => [e.stage, e.ms ?? NaN]));
      sample.total = events.reduce((s, e) => s + (e.ms ?? 0), 0);
      builds.push(sample);
      await d.cli(["image", "rm", name]);

      const c = await d.cli(["--json", "vm", "create", "--image", "bench-base", "--name", `bench-vm-${i}`], { timeoutMs: 900_000 });
      if (c.code !== 0) throw new Error(`create failed: ${c.stderr}`);
      const ev = c.json<{ events: { op: string; stage: string; durationMs: number; outcome: string }[] }>().events;
      const ok = ev.filter((e) => e.op === "create" && e.outcome === "ok" && e.stage !== "total");
      creates.push(ok.slice(0, ok.findIndex((e) => e.stage === "wait-ssh") + 1).reduce((s, e) => s + e.durationMs, 0));
      await d.cli(["vm", "rm", `bench-vm-${i}`, "--force"], { timeoutMs: 120_000 });
    }
  } finally {
    await d.destroy();
  }
  const stages = [...new Set(builds.flatMap((b) => Object.keys(b)))];
  const medians = Object.fromEntries(stages.map((s) => [s, median(builds.map((b) => b[s]).filter((x) => x !== undefined))]));
  const createMedian = median(creates);
  console.log(`\n== image build stages (${runs} builds, vmm ${values.vmm}, one-line step), median`);
  for (const [stage, ms] of Object.entries(medians)) console.log(`  ${stage.padEnd(20)} ${fmt(ms).padStart(10)}`);
  console.log(`\n== baseline: vm create of the base to SSH-ready, median ${fmt(createMedian)} over ${creates.length} [${creates.map(fmt).join(", ")}]`);
  console.log(`  ratio build total / create→ssh-ready: ${(medians.total / createMedian).toFixed(3)}`);
  writeReport("build", { runs, vmm: values.vmm, image: img.name, medians, createMedian, ratio: medians.total / createMedian, builds, creates });
}

runMain(main);
