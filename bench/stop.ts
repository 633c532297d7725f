/**
 * make bench-stop ARGS="--runs 5 [--qemu] [--fc-guest]"
 *
 * Runs inside a private network namespace (bench/run.sh makes it). Starts a real bangerd per
 * variant and measures the wall time of `banger vm stop`, median over --runs:
 * - vmm=firecracker with the fake and no guest (creates use --no-wait), the guest mapping
 *   Ctrl-Alt-Del to a power-off (FAKE_FC_CTRL_ALT_DEL=poweroff, the old Debian image: it halts
 *   and Firecracker keeps running) and to a reboot (the fixed image: Firecracker exits);
 * - --qemu: vmm=qemu with the built Debian image, a real guest;
 * - --fc-guest: the Firecracker driver and the fake booting the built Debian image with QEMU.
 * Only the CLI and the daemon's API are used (plus the test daemon harness), so this file also
 * runs against older trees. Writes JSON to build/bench/stop-<ts>.json.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fakeElfKernel, realExt4 } from "../test/helpers/artifacts.js";
import { REPO, startTestDaemon, type TestDaemon } from "../test/helpers/daemon.js";
import { builtDebianImage, imageAt, registerArgs, type BuiltImage } from "../test/helpers/guest-image.js";
import { benchNamespace, median, runMain, writeReport } from "./common.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: {
    runs: { type: "string", default: "5" },
    qemu: { type: "boolean", default: false },
    "fc-guest": { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
const here = benchNamespace("stop.ts", "bench-stop");

const FAKE_FC = join(REPO, "test/fakes/firecracker/firecracker.mjs");
// The fake refuses to start without the Firecracker spec unless told to run without it.
const SPEC = process.env.FAKE_FC_SPEC || join(REPO, "../shared/reference/firecracker-api.yaml");
const specEnv: Record<string, string> = process.env.FAKE_FC_SPEC === "none" || !existsSync(SPEC) ? { FAKE_FC_SPEC: "none" } : { FAKE_FC_SPEC: SPEC };

/** BENCH_DEBIAN_IMAGE=<dir with vmlinux, initramfs.cpio.gz, rootfs.ext4, work-seed.ext4> points at an image built elsewhere. */
function debianImage(): BuiltImage | undefined {
  const dir = process.env.BENCH_DEBIAN_IMAGE;
  return dir ? imageAt(dir) : builtDebianImage();
}

interface Variant {
  label: string;
  config: Record<string, string | number>;
  env: Record<string, string>;
  /** "fake": tiny artifacts, no guest ever runs; "debian": the built image. */
  image: "fake" | "debian";
}
interface Sample {
  stopMs: number;
  stages: Record<string, number>;
}
interface Event {
  stage: string;
  durationMs: number;
  op: string;
  outcome: string;
}

const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

async function register(d: TestDaemon, v: Variant, art: string): Promise<void> {
  const args =
    v.image === "fake"
      ? ["image", "register", "--name", "bench-stop", "--kernel", fakeElfKernel(art), "--rootfs", realExt4(art, "rootfs.ext4")]
      : registerArgs(debianImage()!, "bench-stop", { services: false });
  const r = await d.cli(args, { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`register failed: ${r.stderr}`);
}

async function measure(v: Variant): Promise<Sample[]> {
  const d = await startTestDaemon({ ns: here, config: { tap_pool_size: 2, ...v.config }, env: v.env });
  const art = mkdtempSync(join(tmpdir(), "banger-bench-stop-"));
  const samples: Sample[] = [];
  try {
    await register(d, v, art);
    for (let i = 0; i < runs; i++) {
      const name = `stop-${i}`;
      const create = await d.cli(["vm", "create", "--image", "bench-stop", "--name", name, ...(v.image === "fake" ? ["--no-wait"] : [])], {
        timeoutMs: 900_000,
      });
      if (create.code !== 0) throw new Error(`create failed: ${create.stderr}`);
      const t0 = performance.now();
      const stop = await d.cli(["vm", "stop", name], { timeoutMs: 300_000 });
      const stopMs = performance.now() - t0;
      if (stop.code !== 0) throw new Error(`stop failed: ${stop.stderr}`);
      const ev = await d.cli(["--json", "vm", "events", name]);
      const stages: Record<string, number> = {};
      if (ev.code === 0) {
        for (const e of ev.json<{ events: Event[] }>().events.filter((x) => x.op === "stop")) stages[e.stage] = e.durationMs;
      }
      samples.push({ stopMs, stages });
      console.log(`  ${v.label} #${i + 1}: vm stop ${fmt(stopMs)} ${JSON.stringify(stages)}`);
      await d.cli(["vm", "rm", name, "--force"], { timeoutMs: 120_000 });
    }
  } finally {
    await d.destroy();
    rmSync(art, { recursive: true, force: true });
  }
  return samples;
}

async function main(): Promise<void> {
  const fc = (mapping: string): Variant => ({
    label: `firecracker fake, Ctrl-Alt-Del → ${mapping}`,
    config: { vmm: "firecracker", firecracker_bin: FAKE_FC, ssh_timeout_s: 30 },
    env: { ...specEnv, FAKE_FC_CTRL_ALT_DEL: mapping },
    image: "fake",
  });
  const variants: Variant[] = [fc("poweroff"), fc("reboot")];
  if ((values.qemu || values["fc-guest"]) && !debianImage()) {
    console.error("no Debian image: run `make image-debian` or set BENCH_DEBIAN_IMAGE to a built image directory");
    process.exit(2);
  }
  if (values.qemu) variants.push({ label: "qemu, Debian guest", config: { vmm: "qemu", memory_mib: 1024 }, env: {}, image: "debian" });
  if (values["fc-guest"]) {
    variants.push({
      label: "firecracker fake + QEMU, Debian guest",
      config: { vmm: "firecracker", firecracker_bin: FAKE_FC, memory_mib: 1024 },
      env: { ...specEnv, FAKE_FC_BOOT: "qemu" },
      image: "debian",
    });
  }

  const report = [];
  for (const v of variants) {
    console.log(`\n== ${v.label}`);
    const samples = await measure(v);
    const stages = [...new Set(samples.flatMap((s) => Object.keys(s.stages)))];
    report.push({
      label: v.label,
      vmm: v.config.vmm,
      env: v.env,
      runs: samples.length,
      medianStopMs: median(samples.map((s) => s.stopMs)),
      stageMedians: Object.fromEntries(stages.map((st) => [st, median(samples.map((s) => s.stages[st]).filter((x) => x !== undefined))])),
      samples,
    });
  }
  console.log("\n== median `banger vm stop` wall time");
  for (const r of report)
    console.log(
      `  ${r.label.padEnd(44)} ${fmt(r.medianStopMs).padStart(9)}   ${Object.entries(r.stageMedians)
        .map(([k, ms]) => `${k} ${fmt(ms)}`)
        .join(", ")}`,
    );
  const ratio = report[0].medianStopMs / report[1].medianStopMs;
  console.log(`  ratio poweroff-mapping / reboot-mapping: ${ratio.toFixed(1)}×`);

  writeReport("stop", { runs, ratioPoweroffVsReboot: ratio, report });
}

runMain(main);
