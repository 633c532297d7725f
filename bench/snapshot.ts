// make bench-create ARGS="--snapshot [--runs N]": the groundwork for issue 13's benchmark. Until
// the app can create from a snapshot, it measures the two baselines that benchmark compares
// against, in one run and on the same image: a raw cold boot → SSH (bench/raw-boot.ts) and a raw
// restore → SSH with QEMU's -incoming by hand (bench/raw-restore.ts). The banger rows (create from
// a snapshot, from the paused pool) are added when those paths exist.
import { join } from "node:path";
import { ensureDefaultKey } from "../src/adapters/ssh/keys.js";
import type { BuiltImage } from "../test/helpers/guest-image.js";
import { startTestDaemon } from "../test/helpers/daemon.js";
import type { Netns } from "../test/helpers/netns.js";
import { median, writeReport } from "./common.js";
import { rawBoot } from "./raw-boot.js";
import { rawRestore, type RawRestoreResult } from "./raw-restore.js";

const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

export async function snapshotBench(o: { ns: Netns; runs: number; images: { label: string; img: BuiltImage }[] }): Promise<void> {
  // A short-lived daemon owns the bridge (banger0) both baselines attach their TAP to.
  const d = await startTestDaemon({ ns: o.ns, config: { tap_pool_size: 0 } });
  const report: Record<string, { coldMs: number[]; restore: RawRestoreResult; coldMedian: number; restoreMedian: number; speedup: number }> = {};
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
    for (const { label, img } of o.images) {
      const coldMs: number[] = [];
      for (let i = 0; i < o.runs; i++) coldMs.push(await rawBoot({ ...common, img, workDir: join(d.dir, "raw") }));
      const restore = await rawRestore({ ...common, img, workDir: join(d.dir, "restore"), runs: o.runs });
      const coldMedian = median(coldMs);
      const restoreMedian = median(restore.restoreToSshMs);
      report[label] = { coldMs, restore, coldMedian, restoreMedian, speedup: coldMedian / restoreMedian };
    }
  } finally {
    await d.destroy();
  }
  for (const [label, r] of Object.entries(report)) {
    console.log(`\n== ${label}: raw qemu, ${o.runs} runs each`);
    console.log(`  cold boot → ssh        median ${fmt(r.coldMedian).padStart(9)}  [${r.coldMs.map(fmt).join(", ")}]`);
    console.log(`  restore → ssh          median ${fmt(r.restoreMedian).padStart(9)}  [${r.restore.restoreToSshMs.map(fmt).join(", ")}]`);
    console.log(`  cold / restore         ${r.speedup.toFixed(1)}×`);
    console.log(
      `  golden boot ${fmt(r.restore.goldenBootMs)}, snapshot ${fmt(r.restore.snapshotMs)}, state file ${(r.restore.stateBytes / 1e6).toFixed(0)} MB`,
    );
  }
  writeReport("snapshot", { runs: o.runs, report });
}
