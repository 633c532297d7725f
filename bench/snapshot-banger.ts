// banger's own rows of the snapshot benchmark: `image snapshot` once, then `vm create` → SSH-ready
// from the snapshot and with --cold, alternating so host load hits both alike. The time is the
// create's `total` event (bangerd's clock, the CLI's startup excluded, as in bench/create.ts).
import type { TestDaemon } from "../test/helpers/daemon.js";
import { registerArgs, type BuiltImage } from "../test/helpers/guest-image.js";
import { median } from "./common.js";

export interface BangerCreates {
  snapshotMs: number[];
  coldMs: number[];
  /** "stage=median ms ..." of the creates from the snapshot. */
  stageMedians: string;
  /** The reidentify stage's own account (the guest's step times), per create from the snapshot. */
  reidentifyDetails: string[];
  snapshotTakeMs: number;
  /** The image's name in banger, for the pool row that reuses its snapshot. */
  image: string;
}

interface Ev {
  op: string;
  stage: string;
  detail?: string;
  durationMs: number;
  outcome: string;
}

export async function bangerCreates(d: TestDaemon, o: { label: string; os: string; img: BuiltImage; runs: number }): Promise<BangerCreates> {
  const image = `bench-snap-${o.label}`.replace(/[^a-z0-9-]/g, "-");
  const reg = await d.cli(registerArgs(o.img, image, { services: false, os: o.os }), { timeoutMs: 300_000 });
  if (reg.code !== 0) throw new Error(`register: ${reg.stderr}`);
  const t0 = performance.now();
  const snap = await d.cli(["image", "snapshot", image], { timeoutMs: 1_800_000 });
  if (snap.code !== 0) throw new Error(`image snapshot: ${snap.stderr}`);
  const snapshotTakeMs = performance.now() - t0;
  const snapshotMs: number[] = [];
  const coldMs: number[] = [];
  const stages: Record<string, number[]> = {};
  const reidentifyDetails: string[] = [];
  for (let i = 0; i < o.runs; i++) {
    for (const cold of [false, true]) {
      const name = `bs${cold ? "c" : "s"}${i}`;
      const r = await d.cli(["--json", "vm", "create", "--image", image, "--name", name, ...(cold ? ["--cold"] : [])], { timeoutMs: 900_000 });
      if (r.code !== 0) throw new Error(`vm create ${name}: ${r.stderr}`);
      const out = r.json<{ vm: { bootSource?: string }; events: Ev[] }>();
      if (!cold && !out.vm.bootSource?.startsWith("snapshot ")) throw new Error(`${name} did not restore: ${out.vm.bootSource}`);
      const ok = out.events.filter((e) => e.op === "create" && e.outcome === "ok");
      (cold ? coldMs : snapshotMs).push(ok.find((e) => e.stage === "total")!.durationMs);
      if (!cold) for (const e of ok) (stages[e.stage] ??= []).push(e.durationMs);
      if (!cold) reidentifyDetails.push(ok.find((e) => e.stage === "reidentify")?.detail ?? "");
      const rm = await d.cli(["vm", "rm", name, "--force"], { timeoutMs: 120_000 });
      if (rm.code !== 0) throw new Error(`vm rm ${name}: ${rm.stderr}`);
    }
  }
  const stageMedians = Object.entries(stages)
    .filter(([s]) => s !== "total")
    .map(([s, v]) => `${s}=${Math.round(median(v))}ms`)
    .join(" ");
  return { snapshotMs, coldMs, stageMedians, reidentifyDetails, snapshotTakeMs, image };
}
