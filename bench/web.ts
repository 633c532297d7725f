/**
 * make bench-web ARGS="--runs 10"
 *
 * Runs inside a private network namespace (bench/run.sh makes it), with the fake Firecracker:
 * - bangerd's settled idle RSS with the web UI off (the baseline) and on, in the same run, each
 *   a fresh daemon with 5 VM records; with the UI on, again after the page loads below (the
 *   event streams they opened are closed by then);
 * - bangerd's idle RSS as a host runs it (bench/idle.ts): UI on, TAP and disk pools warm with a
 *   registered image, a fresh daemon each time, median of `--idle-runs` (5), beside a bare Node
 *   process's RSS read in the same run;
 * - the first-page load of the VMs page in Chromium against the warm daemon, `runs` times:
 *   from navigation to the VM table filled from the event stream's snapshot, with the browser's
 *   cache cleared before each load (a fresh visitor, logged in). Median, min and max.
 * Writes JSON to build/bench/web-<ts>.json.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { fakeElfKernel, realExt4 } from "../test/helpers/artifacts.js";
import { REPO, startTestDaemon, testConfig, type TestDaemon } from "../test/helpers/daemon.js";
import { chromiumSkipReason, launchIn, webConfig } from "../test/helpers/browser.js";
import { benchNamespace, median, runMain, writeReport } from "./common.js";
import { api, daemonMemory, type Memory } from "./cli-lib.js";
import { idleRss } from "./idle.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: { runs: { type: "string", default: "10" }, "idle-runs": { type: "string", default: "5" } },
});
const runs = Number(values.runs);
const idleRuns = Number(values["idle-runs"]);
const here = benchNamespace("web.ts", "bench-web");
const FAKE_FC = join(REPO, "test/fakes/firecracker/firecracker.mjs");
const SETTLE_MS = 15_000;
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const VMS = 5;

async function daemon(web: boolean): Promise<{ d: TestDaemon; pid: number; art: string }> {
  const dir = mkdtempSync(join(tmpdir(), "banger-bench-web-"));
  const config = { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 2, disk_pool_size: 0, work_disk_gib: 1 };
  const d = await startTestDaemon({ ns: here, dir, configText: web ? webConfig(dir, config) : testConfig(dir, config), env: { FAKE_FC_SPEC: "none" } });
  const art = mkdtempSync(join(tmpdir(), "banger-bench-web-art-"));
  const reg = await d.cli(["image", "register", "--name", "bench-1", "--kernel", fakeElfKernel(art), "--rootfs", realExt4(art, "rootfs.ext4")]);
  if (reg.code !== 0) throw new Error(reg.stderr);
  for (let i = 0; i < VMS; i++) {
    const r = await api(d.socket, "POST", "/v1/vms", { image: "bench-1", name: `vm-${i}`, noWait: true });
    if (r.status !== 201) throw new Error(`create: ${r.status}`);
  }
  const pid = (await api<{ pid: number }>(d.socket, "GET", "/v1/version")).json.pid;
  return { d, pid, art };
}

async function settled(pid: number): Promise<Memory> {
  await sleep(SETTLE_MS);
  return daemonMemory(pid);
}

async function teardown(x: { d: TestDaemon; art: string }): Promise<void> {
  await x.d.cli(["vm", "rm", "--force", ...Array.from({ length: VMS }, (_, i) => `vm-${i}`)]).catch(() => undefined);
  for (let i = 0; i < VMS; i++) await x.d.cli(["vm", "rm", "--force", `vm-${i}`]);
  await x.d.destroy();
  rmSync(x.art, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const skip = chromiumSkipReason();
  if (skip) throw new Error(skip);

  console.log(`bangerd idle RSS, UI on, TAP and disk pools warm, ${idleRuns} fresh daemons:`);
  const idle = await idleRss(here, idleRuns, console.log);
  console.log(
    `bangerd idle RSS: median ${mib(idle.medianRss)} (target <= 60 MiB); bare node ${mib(idle.medianBaselineRss)}; ratio ${idle.medianRatio.toFixed(2)}`,
  );

  const off = await daemon(false);
  const rssOff = await settled(off.pid);
  console.log(`web UI off: idle RSS ${mib(rssOff.rss)} (anon ${mib(rssOff.anon)})`);
  await teardown(off);

  const on = await daemon(true);
  const rssOn = await settled(on.pid);
  console.log(`web UI on:  idle RSS ${mib(rssOn.rss)} (anon ${mib(rssOn.anon)}), ${((rssOn.rss / rssOff.rss - 1) * 100).toFixed(1)}% over off`);

  const b = await launchIn(here);
  const loads: { toTableMs: number; domContentLoadedMs: number; transferBytes: number }[] = [];
  try {
    const link = (await on.d.cli(["--json", "web"])).json<{ url: string }>().url;
    await b.page.goto(link);
    await b.page.locator(`tr[data-vm="vm-0"]`).waitFor();
    const cdp = await b.context.newCDPSession(b.page);
    for (let i = 0; i < runs + 1; i++) {
      await cdp.send("Network.clearBrowserCache");
      await b.page.goto("about:blank");
      const t0 = performance.now();
      await b.page.goto("http://127.0.0.1:7780/#/vms");
      await b.page.locator(`tr[data-vm="vm-${VMS - 1}"]`).waitFor();
      const toTableMs = performance.now() - t0;
      const nav = await b.page.evaluate(() => {
        const n = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
        const res = performance.getEntriesByType("resource") as PerformanceResourceTiming[];
        return { dcl: n.domContentLoadedEventEnd, bytes: n.transferSize + res.reduce((s, r) => s + r.transferSize, 0) };
      });
      if (i > 0) loads.push({ toTableMs, domContentLoadedMs: nav.dcl, transferBytes: nav.bytes }); // the first warms the daemon's path
    }
  } finally {
    await b.close();
  }
  const rssAfter = await settled(on.pid);
  await teardown(on);

  const t = loads.map((l) => l.toTableMs);
  const report = {
    runs,
    vms: VMS,
    idleWarmPools: idle,
    idleRss: { webOff: rssOff, webOn: rssOn, webOnAfterLoads: rssAfter, ratioOnOff: rssOn.rss / rssOff.rss },
    firstPageLoad: {
      medianToTableMs: median(t),
      minMs: Math.min(...t),
      maxMs: Math.max(...t),
      medianDomContentLoadedMs: median(loads.map((l) => l.domContentLoadedMs)),
      transferBytes: median(loads.map((l) => l.transferBytes)),
      loads,
    },
  };
  console.log(`web UI on, after ${runs + 1} page loads: idle RSS ${mib(rssAfter.rss)}`);
  console.log(
    `first page load (cache cleared, warm daemon), ${runs} runs: median ${median(t).toFixed(1)} ms to a filled VM table ` +
      `(min ${Math.min(...t).toFixed(1)}, max ${Math.max(...t).toFixed(1)}); DOMContentLoaded median ${report.firstPageLoad.medianDomContentLoadedMs.toFixed(1)} ms; ` +
      `${report.firstPageLoad.transferBytes} bytes`,
  );
  writeReport("web", report);
}

runMain(main);
