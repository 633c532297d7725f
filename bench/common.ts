// What every benchmark shares: the namespace bench/run.sh made, the median, the JSON report
// beside the others in build/bench, and an exit code for the wrapper.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ExecRunner } from "../src/adapters/exec/runner.js";
import { REPO } from "../test/helpers/daemon.js";
import type { Netns } from "../test/helpers/netns.js";

/** The namespace bench/run.sh created and runs this script in; exits with a usage message outside it. */
export function benchNamespace(script: string, target: string): Netns {
  const name = process.env.BANGER_BENCH_NS;
  if (!name) {
    console.error(`bench/${script} must run inside its namespace: use \`make ${target}\` (bench/run.sh)`);
    process.exit(2);
  }
  const runner = new ExecRunner();
  return { name, runner, exec: (c, a, o) => runner.run(c, a, o), destroy: async () => undefined };
}

export const median = (xs: number[]) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** build/bench/<kind>-<timestamp>.json; prints and returns the path. */
export function writeReport(kind: string, data: unknown): string {
  const out = join(REPO, "build/bench");
  mkdirSync(out, { recursive: true });
  const file = join(out, `${kind}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2));
  console.log(`\nwrote ${file}`);
  return file;
}

export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
