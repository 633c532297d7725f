// The paused-pool row of the snapshot benchmark: the same daemon restarted with vm_pool_size = 1,
// then `vm create` → SSH-ready from a paused member, each create only once the pool has refilled
// (so every one claims a member, as on a host whose creates are further apart than a restore).
// The time is the create's `total` event, as in the other rows.
import { readFileSync, writeFileSync } from "node:fs";
import type { TestDaemon } from "../test/helpers/daemon.js";
import { median } from "./common.js";

export interface PoolCreates {
  poolMs: number[];
  /** "stage=median ms ..." of the creates from the pool. */
  stageMedians: string;
  /** How long each refill took to show up after the create before it. */
  refillMs: number[];
}

interface Ev {
  op: string;
  stage: string;
  durationMs: number;
  outcome: string;
}

async function restartWithPool(d: TestDaemon): Promise<void> {
  const proc = d.proc;
  const exited = new Promise((r) => (!proc || proc.exitCode !== null ? r(undefined) : proc.once("exit", r)));
  await d.stop();
  await exited;
  const toml = readFileSync(d.configPath, "utf8");
  // Top-level keys go before the first table.
  if (!toml.includes("vm_pool_size")) writeFileSync(d.configPath, toml.replace("[web]", "vm_pool_size = 1\n[web]"));
  await d.start();
}

async function waitForMember(d: TestDaemon, image: string, timeoutMs = 600_000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    const h = (await d.cli(["--json", "host"])).json<{ pool: { vms?: { members: Record<string, number> } } }>();
    if ((h.pool.vms?.members[image] ?? 0) > 0) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the paused pool of ${image} did not refill within ${timeoutMs / 1000} s`);
}

export async function poolCreates(d: TestDaemon, o: { image: string; runs: number }): Promise<PoolCreates> {
  await restartWithPool(d);
  const poolMs: number[] = [];
  const refillMs: number[] = [];
  const stages: Record<string, number[]> = {};
  for (let i = 0; i < o.runs; i++) {
    refillMs.push(await waitForMember(d, o.image));
    const name = `bp${i}`;
    const r = await d.cli(["--json", "vm", "create", "--image", o.image, "--name", name], { timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`vm create ${name}: ${r.stderr}`);
    const out = r.json<{ vm: { bootSource?: string }; events: Ev[] }>();
    if (!out.vm.bootSource?.endsWith("(pool)")) throw new Error(`${name} did not claim a paused member: ${out.vm.bootSource}`);
    const ok = out.events.filter((e) => e.op === "create" && e.outcome === "ok");
    poolMs.push(ok.find((e) => e.stage === "total")!.durationMs);
    for (const e of ok) (stages[e.stage] ??= []).push(e.durationMs);
    const rm = await d.cli(["vm", "rm", name, "--force"], { timeoutMs: 120_000 });
    if (rm.code !== 0) throw new Error(`vm rm ${name}: ${rm.stderr}`);
  }
  const stageMedians = Object.entries(stages)
    .filter(([s]) => s !== "total")
    .map(([s, v]) => `${s}=${Math.round(median(v))}ms`)
    .join(" ");
  return { poolMs, stageMedians, refillMs };
}
