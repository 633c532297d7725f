/**
 * make bench-channel ARGS="--runs 10"
 *
 * Round-trip latency of one trivial command in a real Debian guest (QEMU, the built image,
 * no NAT), in one run, median over --runs, each path measured in turn:
 * - `banger vm ssh <vm> -- true`           plain SSH over the guest's IP (the baseline)
 * - `banger vm ssh --vsock <vm> -- true`   SSH through banger-vsock and the guest channel
 * - `banger vm exec <vm> -- true`          SSH via whichever of the two answers first
 * Each figure is the CLI's whole wall time (node start, API calls, ssh handshake and the
 * command), so the ratios against plain ssh are what a user sees. On this host the channel is
 * virtio-serial (no /dev/vhost-vsock). Writes JSON to build/bench/channel-<ts>.json.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startTestDaemon } from "../test/helpers/daemon.js";
import { builtDebianImage, registerArgs } from "../test/helpers/guest-image.js";
import { benchNamespace, median, runMain, writeReport } from "./common.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: { runs: { type: "string", default: "10" } },
});
const runs = Number(values.runs);
const here = benchNamespace("channel.ts", "bench-channel");

const PATHS: Record<string, string[]> = {
  "vm ssh -- true (IP)": ["vm", "ssh", "bench", "--", "true"],
  "vm ssh --vsock -- true": ["vm", "ssh", "--vsock", "bench", "--", "true"],
  "vm exec -- true": ["vm", "exec", "bench", "--", "true"],
};

runMain(async () => {
  const image = builtDebianImage();
  if (!image) throw new Error("needs the Debian guest image: run `make image-debian`");
  const dir = mkdtempSync(join(tmpdir(), "bench-channel-"));
  const d = await startTestDaemon({ ns: here, dir, config: { tap_pool_size: 1, memory_mib: 1024, work_disk_gib: 2 } });
  try {
    const reg = await d.cli(registerArgs(image, "debian-bench", { services: false }), { timeoutMs: 300_000 });
    if (reg.code !== 0) throw new Error(`register failed: ${reg.stderr}`);
    const c = await d.cli(["vm", "create", "--image", "debian-bench", "--name", "bench"], { timeoutMs: 900_000 });
    if (c.code !== 0) throw new Error(`create failed: ${c.stderr}`);
    const samples: Record<string, number[]> = Object.fromEntries(Object.keys(PATHS).map((k) => [k, []]));
    // Interleaved, so a slow spell on the shared host lands on every path alike.
    for (let i = 0; i < runs; i++) {
      for (const [label, argv] of Object.entries(PATHS)) {
        const t0 = performance.now();
        const r = await d.cli(argv, { timeoutMs: 120_000 });
        const ms = performance.now() - t0;
        if (r.code !== 0) throw new Error(`${label} failed (${r.code}): ${r.stderr}`);
        samples[label]!.push(ms);
      }
    }
    const base = median(samples["vm ssh -- true (IP)"]!);
    const report = Object.entries(samples).map(([label, xs]) => ({ label, runs: xs.length, medianMs: median(xs), ratioVsSsh: median(xs) / base }));
    console.log(`\nround trip of one command, median of ${runs} (real Debian guest, QEMU/TCG):`);
    for (const r of report) console.log(`  ${r.label.padEnd(26)} ${r.medianMs.toFixed(0).padStart(6)} ms   x${r.ratioVsSsh.toFixed(2)} vs plain ssh`);
    writeReport("channel", { runs, report });
    await d.cli(["vm", "rm", "bench", "--force"], { timeoutMs: 120_000 });
  } finally {
    await d.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
