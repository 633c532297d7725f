// make bench-create ARGS="--snapshot [--runs N]": issue 13's benchmark, in one run and on the same
// image: a raw cold boot → SSH (bench/raw-boot.ts), a raw restore → SSH with QEMU's -incoming by
// hand (bench/raw-restore.ts, the baseline), and banger's own `vm create` → SSH-ready from the
// image's golden snapshot and with --cold (bench/snapshot-banger.ts), then from the paused pool
// (bench/snapshot-pool.ts: the daemon restarted with vm_pool_size = 1, each create after the refill).
import { join } from "node:path";
import { ensureDefaultKey } from "../src/adapters/ssh/keys.js";
import type { BuiltImage } from "../test/helpers/guest-image.js";
import { startTestDaemon } from "../test/helpers/daemon.js";
import type { Netns } from "../test/helpers/netns.js";
import { median, writeReport } from "./common.js";
import { rawBoot } from "./raw-boot.js";
import { rawRestore, type RawRestoreResult } from "./raw-restore.js";
import { bangerCreates, type BangerCreates } from "./snapshot-banger.js";
import { poolCreates, type PoolCreates } from "./snapshot-pool.js";

const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

export async function snapshotBench(o: { ns: Netns; runs: number; images: { label: string; os: string; img: BuiltImage }[] }): Promise<void> {
  // A short-lived daemon owns the bridge (banger0) both baselines attach their TAP to.
  const d = await startTestDaemon({ ns: o.ns, config: { tap_pool_size: 0 } });
  const report: Record<
    string,
    {
      coldMs: number[];
      restore: RawRestoreResult;
      coldMedian: number;
      restoreMedian: number;
      speedup: number;
      banger: BangerCreates;
      pool?: PoolCreates;
    }
  > = {};
  try {
    const keyPath = join(d.dir, "raw-key", "id_ed25519");
    await ensureDefaultKey(keyPath);
    const common = {
      bridge: "banger0",
      subnet: "172.30.0.0/24",
      ip: "172.30.0.250",
      keyPath,
      vcpus: 2,
      memoryMib: 1024,
      workDiskGib: 10,
      stateDir: d.stateDir,
    };
    for (const { label, os, img } of o.images) {
      const coldMs: number[] = [];
      for (let i = 0; i < o.runs; i++) coldMs.push(await rawBoot({ ...common, img, workDir: join(d.dir, "raw") }));
      const restore = await rawRestore({ ...common, img, workDir: join(d.dir, "restore"), runs: o.runs });
      const coldMedian = median(coldMs);
      const restoreMedian = median(restore.restoreToSshMs);
      const banger = await bangerCreates(d, { label, os, img, runs: o.runs });
      report[label] = { coldMs, restore, coldMedian, restoreMedian, speedup: coldMedian / restoreMedian, banger };
    }
    // Last: the restart that turns the pool on keeps the snapshots taken above.
    for (const { label } of o.images) report[label].pool = await poolCreates(d, { image: report[label].banger.image, runs: o.runs });
  } finally {
    await d.destroy();
  }
  for (const [label, r] of Object.entries(report)) {
    console.log(`\n== ${label}: raw qemu, ${o.runs} runs each`);
    console.log(`  cold boot → ssh        median ${fmt(r.coldMedian).padStart(9)}  [${r.coldMs.map(fmt).join(", ")}]`);
    console.log(`  restore → ssh          median ${fmt(r.restoreMedian).padStart(9)}  [${r.restore.restoreToSshMs.map(fmt).join(", ")}]`);
    console.log(`  cold / restore         ${r.speedup.toFixed(1)}×`);
    const b = r.banger;
    console.log(`  banger create, snapshot median ${fmt(median(b.snapshotMs)).padStart(9)}  [${b.snapshotMs.map(fmt).join(", ")}]`);
    console.log(`  banger create, --cold   median ${fmt(median(b.coldMs)).padStart(9)}  [${b.coldMs.map(fmt).join(", ")}]`);
    const p = r.pool;
    if (p) console.log(`  banger create, pool     median ${fmt(median(p.poolMs)).padStart(9)}  [${p.poolMs.map(fmt).join(", ")}]`);
    console.log(`  banger snapshot / raw restore  ${(median(b.snapshotMs) / r.restoreMedian).toFixed(2)}×`);
    if (p) console.log(`  banger pool / raw restore      ${(median(p.poolMs) / r.restoreMedian).toFixed(2)}×`);
    console.log(`  banger cold / banger snapshot  ${(median(b.coldMs) / median(b.snapshotMs)).toFixed(1)}×`);
    console.log(`  banger snapshot stages (medians): ${b.stageMedians}`);
    for (const line of b.reidentifyDetails) console.log(`    reidentify: ${line}`);
    if (p) console.log(`  banger pool stages (medians): ${p.stageMedians}; refill seen after ${p.refillMs.map(fmt).join(", ")}`);
    console.log(
      `  golden boot ${fmt(r.restore.goldenBootMs)}, snapshot ${fmt(r.restore.snapshotMs)}, state file ${(r.restore.stateBytes / 1e6).toFixed(0)} MB`,
    );
  }
  writeReport("snapshot", { runs: o.runs, report });
}
