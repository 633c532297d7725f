/**
 * bangerd's idle RSS as an operator's host sees it, for bench/web.ts: the web UI on, the TAP pool
 * (2) and the disk pool (2 sets of a registered, promoted image) warm, quiet otherwise. Each run
 * is a fresh daemon, read once settled; beside it, in the same run, a bare Node process that only
 * keeps its event loop alive (`node -e 'setInterval(...)'`), the floor any Node daemon sits on.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fakeElfKernel, realExt4 } from "../test/helpers/artifacts.js";
import { REPO, startTestDaemon } from "../test/helpers/daemon.js";
import { webConfig } from "../test/helpers/browser.js";
import type { Netns } from "../test/helpers/netns.js";
import { median } from "./common.js";
import { api, daemonMemory, type Memory } from "./cli-lib.js";

const FAKE_FC = join(REPO, "test/fakes/firecracker/firecracker.mjs");
/**
 * V8 gives back the garbage of start-up and of the setup calls only once its memory reducer has
 * run on an idle heap; on this host that was 20-35 s after the last request.
 */
const SETTLE_MS = 45_000;
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

export interface IdleRss {
  runs: number;
  daemon: Memory[];
  nodeBaseline: Memory[];
  medianRss: number;
  medianBaselineRss: number;
  /** Median of each run's daemon RSS over the baseline read beside it. */
  medianRatio: number;
}

async function oneRun(ns: Netns): Promise<{ daemon: Memory; baseline: Memory }> {
  const dir = mkdtempSync(join(tmpdir(), "banger-bench-idle-"));
  const art = mkdtempSync(join(tmpdir(), "banger-bench-idle-art-"));
  const config = { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 2, disk_pool_size: 2, work_disk_gib: 1 };
  const d = await startTestDaemon({ ns, dir, configText: webConfig(dir, config), env: { FAKE_FC_SPEC: "none" } });
  const floor = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  try {
    const cli = async (args: string[]) => {
      const r = await d.cli(args);
      if (r.code !== 0) throw new Error(`banger ${args.join(" ")}: ${r.stderr}`);
    };
    const rootfs = realExt4(art, "rootfs.ext4");
    await cli(["image", "register", "--name", "idle-1", "--kernel", fakeElfKernel(art), "--rootfs", rootfs, "--work-seed", realExt4(art, "seed.ext4")]);
    await cli(["image", "promote", "idle-1", "--as", "idle"]);
    await cli(["image", "warm", "idle"]);
    const pid = (await api<{ pid: number }>(d.socket, "GET", "/v1/version")).json.pid;
    const host = (await api<{ pool: { taps: { idle: number }; disks: { sets: Record<string, number> } } }>(d.socket, "GET", "/v1/host")).json.pool;
    if (host.taps.idle < 2 || (host.disks.sets["idle-1"] ?? 0) < 2) throw new Error(`pools not warm: ${JSON.stringify(host)}`);
    await sleep(SETTLE_MS);
    return { daemon: daemonMemory(pid), baseline: daemonMemory(floor.pid!) };
  } finally {
    floor.kill("SIGKILL");
    await d.destroy();
    rmSync(art, { recursive: true, force: true });
  }
}

export async function idleRss(ns: Netns, runs: number, log: (line: string) => void): Promise<IdleRss> {
  const daemon: Memory[] = [];
  const nodeBaseline: Memory[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await oneRun(ns);
    daemon.push(r.daemon);
    nodeBaseline.push(r.baseline);
    log(`  run ${i + 1}: bangerd ${mib(r.daemon.rss)} (anon ${mib(r.daemon.anon)}, file ${mib(r.daemon.file)}), node baseline ${mib(r.baseline.rss)}`);
  }
  return {
    runs,
    daemon,
    nodeBaseline,
    medianRss: median(daemon.map((m) => m.rss)),
    medianBaselineRss: median(nodeBaseline.map((m) => m.rss)),
    medianRatio: median(daemon.map((m, i) => m.rss / nodeBaseline[i].rss)),
  };
}
