/**
 * make bench-create ARGS="--runs 2 [--parallel K] [--compare] [--push-compare] [--vmm qemu|firecracker] [--image debian --image alpine] [--snapshot]"
 *
 * Runs inside a private network namespace (bench/run.sh makes it). Starts a
 * real bangerd, registers each built image (`--image OS` = build/images/OS/latest,
 * or an image directory; default debian), and measures N creates of each:
 * per-stage medians and create→SSH-ready. The baseline, measured in the same
 * run, is the same image booted by hand with the same VMM arguments
 * (bench/raw-boot.ts). --push-compare measures readiness pushed by banger-agent (ready_push = true)
 * against polling (ready_push = false) in the same run. Writes JSON to build/bench/.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startTestDaemon, type TestDaemon } from "../test/helpers/daemon.js";
import { existsSync } from "node:fs";
import { builtImage, registerArgs, type BuiltImage } from "../test/helpers/guest-image.js";
import { benchNamespace, median, runMain, writeReport } from "./common.js";
import { ensureDefaultKey } from "../src/adapters/ssh/keys.js";
import { rawBoot } from "./raw-boot.js";
import { snapshotBench } from "./snapshot.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    runs: { type: "string", default: "3" },
    parallel: { type: "string", default: "1" },
    compare: { type: "boolean", default: false },
    "push-compare": { type: "boolean", default: false },
    vmm: { type: "string", default: "qemu" },
    image: { type: "string", multiple: true, default: ["debian"] },
    snapshot: { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
const parallel = Number(values.parallel);
const here = benchNamespace("create.ts", "bench-create");
/** `debian`/`alpine` = the newest build of that OS; anything else is an image directory. */
function imageFor(spec: string): { label: string; os: string; img: BuiltImage } {
  if (!spec.includes("/")) {
    const img = builtImage(spec);
    if (!img) {
      console.error(`no ${spec} image under build/images/${spec}: run \`make image-${spec}\` first`);
      process.exit(2);
    }
    return { label: spec, os: spec, img };
  }
  const dir = spec.replace(/\/+$/, "");
  if (!existsSync(join(dir, "rootfs.ext4"))) {
    console.error(`--image ${spec}: no rootfs.ext4 there`);
    process.exit(2);
  }
  const name = dir.split("/").pop()!;
  const img = {
    dir,
    name,
    kernel: join(dir, "vmlinux"),
    initrd: join(dir, "initramfs.cpio.gz"),
    rootfs: join(dir, "rootfs.ext4"),
    workSeed: join(dir, "work-seed.ext4"),
  };
  return { label: name, os: name.split("-")[0], img };
}
const images = [...new Set(values.image!)].map(imageFor);

interface Event {
  stage: string;
  durationMs: number;
  op: string;
  outcome: string;
}
interface Variant {
  label: string;
  pool: number;
  seed: boolean;
  /** ready_push; the daemon's default (true) when unset. */
  readyPush?: boolean;
}

const warm = async (d: TestDaemon, v: Variant) => {
  if (v.pool === 0) return;
  const r = await d.cli(["image", "warm", "bench-1"], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`warm failed: ${r.stderr}`);
};

const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const PRE_VMM = ["lease-ip", "tap", "rootfs", "work-disk", "work-disk-fallback", "inject", "nat"];

async function measure(v: Variant, image: ReturnType<typeof imageFor>): Promise<{ image: string; variant: Variant; samples: Record<string, number>[] }> {
  const img = image.img;
  const d: TestDaemon = await startTestDaemon({
    ns: here,
    config: {
      vmm: values.vmm!,
      ...(values.vmm === "firecracker" ? { firecracker_bin: process.env.FIRECRACKER_BIN ?? "firecracker" } : {}),
      tap_pool_size: v.pool,
      disk_pool_size: v.pool === 0 ? 0 : Math.max(2, parallel),
      memory_mib: 1024,
      work_disk_gib: 10,
      vcpus: 2,
      ...(v.readyPush === undefined ? {} : { ready_push: v.readyPush }),
    },
    env: process.env.FIRECRACKER_BIN ? { FAKE_FC_BOOT: "qemu" } : {},
  });
  const samples: Record<string, number>[] = [];
  try {
    const args = registerArgs(img, "bench-1", { services: false, os: image.os }).filter(
      (a, i, all) => v.seed || (a !== "--work-seed" && all[i - 1] !== "--work-seed"),
    );
    const reg = await d.cli(args, { timeoutMs: 600_000 });
    if (reg.code !== 0) throw new Error(`register failed: ${reg.stderr}`);
    let n = 0;
    for (let round = 0; round < runs; round++) {
      // Steady state: the pools refill after each create; measure once they are full again.
      await warm(d, v);
      const names = Array.from({ length: parallel }, () => `bench-${v.pool}-${v.seed ? "s" : "n"}-${n++}`);
      const results = await Promise.all(names.map((name) => d.cli(["--json", "vm", "create", "--image", "bench-1", "--name", name], { timeoutMs: 900_000 })));
      for (const r of results) {
        if (r.code !== 0) throw new Error(`create failed: ${r.stderr}`);
        const events = r.json<{ events: Event[] }>().events.filter((e) => e.op === "create" && e.outcome === "ok");
        const sample: Record<string, number> = {};
        for (const e of events) sample[e.stage.replace("work-disk-fallback", "work-disk")] = e.durationMs;
        const until = (last: string) => events.slice(0, events.findIndex((e) => e.stage === last) + 1).reduce((s, e) => s + e.durationMs, 0);
        sample["pre-vmm"] = events.filter((e) => PRE_VMM.includes(e.stage)).reduce((s, e) => s + e.durationMs, 0);
        sample["create→ssh-ready"] = until("wait-ssh");
        sample["create→services-ready"] = until("wait-services");
        samples.push(sample);
      }
      await Promise.all(names.map((name) => d.cli(["vm", "rm", name, "--force"], { timeoutMs: 120_000 })));
    }
  } finally {
    await d.destroy();
  }
  return { image: image.label, variant: v, samples };
}

async function main(): Promise<void> {
  if (values.snapshot) return snapshotBench({ ns: here, runs, images: images.map((i) => ({ label: i.label, os: i.os, img: i.img })) });
  const variants: Variant[] = values.compare
    ? [
        { label: "pool+seed", pool: 4, seed: true },
        { label: "no-pool+no-seed", pool: 0, seed: false },
      ]
    : values["push-compare"]
      ? [
          { label: "ready pushed", pool: 4, seed: true, readyPush: true },
          { label: "ready polled", pool: 4, seed: true, readyPush: false },
        ]
      : [{ label: "default", pool: 4, seed: true }];
  const results = [];
  for (const image of images) for (const v of variants) results.push(await measure(v, image));

  // Baseline per image: raw VMM boot→SSH with a bridge from a short-lived daemon (it owns the bridge setup).
  const raw: Record<string, number[]> = {};
  const d = await startTestDaemon({ ns: here, config: { tap_pool_size: 0 } });
  try {
    const keyPath = join(d.dir, "raw-key", "id_ed25519");
    await ensureDefaultKey(keyPath);
    for (const { label, img } of images) {
      raw[label] = [];
      for (let i = 0; i < runs; i++) {
        raw[label].push(
          await rawBoot({
            img,
            workDir: join(d.dir, "raw"),
            bridge: "banger0",
            subnet: "172.30.0.0/24",
            ip: "172.30.0.250",
            keyPath,
            vcpus: 2,
            memoryMib: 1024,
            workDiskGib: 10,
            stateDir: d.stateDir,
          }),
        );
      }
    }
  } finally {
    await d.destroy();
  }
  const rawMedian = Object.fromEntries(Object.entries(raw).map(([k, xs]) => [k, median(xs)]));

  const report = results.map(({ image, variant, samples }) => {
    const stages = [...new Set(samples.flatMap((s) => Object.keys(s)))];
    const medians = Object.fromEntries(stages.map((s) => [s, median(samples.map((x) => x[s]).filter((x) => x !== undefined))]));
    return { image, variant, runs: samples.length, medians, ratioVsRaw: medians["create→ssh-ready"] / rawMedian[image], samples };
  });
  for (const r of report) {
    console.log(
      `\n== ${r.image}: ${r.variant.label} (pool ${r.variant.pool}, seed ${r.variant.seed ? "on" : "off"}; ${r.runs} creates, parallel ${parallel}, vmm ${values.vmm})`,
    );
    for (const [stage, ms] of Object.entries(r.medians)) console.log(`  ${stage.padEnd(24)} ${fmt(ms).padStart(10)}`);
    console.log(`  ratio create→ssh-ready / raw boot→ssh: ${r.ratioVsRaw.toFixed(3)}`);
  }
  for (const [label, xs] of Object.entries(raw)) {
    console.log(
      `\n== raw ${values.vmm} boot→ssh, ${label} (same image, same args): median ${fmt(rawMedian[label])} over ${xs.length} runs [${xs.map(fmt).join(", ")}]`,
    );
  }
  if (images.length > 1) {
    console.log(`\n== create→ssh-ready side by side (${report[0].variant.label})`);
    for (const r of report.filter((x) => x.variant.label === report[0].variant.label)) {
      console.log(`  ${r.image.padEnd(10)} ${fmt(r.medians["create→ssh-ready"]).padStart(10)}   raw ${fmt(rawMedian[r.image]).padStart(10)}`);
    }
  }
  writeReport("create", { runs, parallel, vmm: values.vmm, images: images.map((i) => i.img.name), raw: { samples: raw, median: rawMedian }, report });
}

runMain(main);
