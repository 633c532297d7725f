/**
 * make bench-cli ARGS="--runs 15"
 *
 * Runs inside a private network namespace (bench/run.sh makes it). One bangerd with the fake
 * Firecracker (no guests, so the figures are the CLI's and the daemon's own), and:
 * - CLI wall times against `node -e 0` measured in the same run, interleaved: `banger --help`,
 *   `banger --json vm ls` with 10 VMs, `banger __complete vms` (shell completion's name lookup), and `banger vm create --no-wait`, whose own cost is its
 *   wall time minus `node -e 0` minus the time it waited on the daemon (BANGER_TIMING=1 makes the
 *   CLI report that, and the daemon's Server-Timing total, on stderr);
 * - bangerd's RSS idle with the TAP and disk pools warm, and with 50 VM records of which 5 run,
 *   3 s after the last request and again once settled (15 s: V8 frees the garbage of a burst,
 *   such as image checksum buffers, only when its memory reducer runs on an idle heap);
 * - `GET /v1/vms` server time (Server-Timing) and round trip with 200 VM records.
 * Only the CLI, the API and /proc are used, so this also runs against older trees (no
 * Server-Timing there: those figures print as n/a). Writes JSON to build/bench/cli-<ts>.json.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { fakeElfKernel, realExt4 } from "../test/helpers/artifacts.js";
import { BANGER, REPO, startTestDaemon, type TestDaemon } from "../test/helpers/daemon.js";
import { benchNamespace, runMain, writeReport } from "./common.js";
import { median } from "./common.js";
import { api, daemonMemory, timeCommand, type Memory, type Timed } from "./cli-lib.js";

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"),
  options: { runs: { type: "string", default: "15" }, records: { type: "string", default: "200" } },
});
const runs = Number(values.runs);
const records = Number(values.records);
const here = benchNamespace("cli.ts", "bench-cli");
const FAKE_FC = join(REPO, "test/fakes/firecracker/firecracker.mjs");
const BIN_JS = join(REPO, "bin/banger.js");
const fmt = (ms: number | undefined) => (ms === undefined || Number.isNaN(ms) ? "n/a" : `${ms.toFixed(1)} ms`);
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const SETTLE_MS = 15_000;

async function settledMemory(pid: number): Promise<{ early: Memory; settled: Memory }> {
  await sleep(3000);
  const early = daemonMemory(pid);
  await sleep(SETTLE_MS - 3000);
  return { early, settled: daemonMemory(pid) };
}

interface Vm {
  name: string;
  state: string;
  pid?: number;
}

/** Runs each command `runs` times, round-robin, so a noisy moment hits all of them alike. */
function interleaved(cmds: Record<string, string[]>, env: NodeJS.ProcessEnv): Record<string, Timed[]> {
  const out: Record<string, Timed[]> = Object.fromEntries(Object.keys(cmds).map((k) => [k, []]));
  for (const argv of Object.values(cmds)) timeCommand(argv, env); // warm the page cache
  for (let i = 0; i < runs; i++) {
    for (const [k, argv] of Object.entries(cmds)) {
      const r = timeCommand(argv, env);
      if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr}`);
      out[k].push(r);
    }
  }
  return out;
}

async function waitStates(socket: string, want: (vms: Vm[]) => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (want((await api<{ vms: Vm[] }>(socket, "GET", "/v1/vms")).json.vms)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** VM records through the API; each VMM is killed and the daemon's liveness loop records it stopped. */
async function addStoppedVms(d: TestDaemon, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await api<{ vm: Vm }>(d.socket, "POST", "/v1/vms", { image: "bench", name: `${prefix}-${i}`, noWait: true });
    if (r.status !== 201) throw new Error(`create ${prefix}-${i}: ${r.status} ${JSON.stringify(r.json)}`);
    if (r.json.vm.pid) process.kill(r.json.vm.pid, "SIGKILL");
  }
  await waitStates(d.socket, (vms) => vms.filter((v) => v.name.startsWith(`${prefix}-`)).every((v) => v.state === "stopped"), `${prefix}-* stopped`);
}

async function main(): Promise<void> {
  const art = mkdtempSync(join(tmpdir(), "banger-bench-cli-"));
  const d = await startTestDaemon({
    ns: here,
    config: { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 4, disk_pool_size: 2, work_disk_gib: 1 },
    // The spec check loads YAML and ajv in every fake VMM; it says nothing about banger's speed.
    env: { FAKE_FC_SPEC: "none" },
  });
  const env = { ...process.env, BANGER_CONFIG: d.configPath, XDG_DATA_HOME: join(d.dir, "data") };
  const cli = async (args: string[]) => {
    const r = timeCommand([BANGER, ...args], env);
    if (r.code !== 0) throw new Error(`banger ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return r;
  };
  try {
    const pid = (await api<{ pid: number }>(d.socket, "GET", "/v1/version")).json.pid;
    await cli([
      "image",
      "register",
      "--name",
      "bench-1",
      "--kernel",
      fakeElfKernel(art),
      "--rootfs",
      realExt4(art, "rootfs.ext4"),
      "--work-seed",
      realExt4(art, "seed.ext4"),
    ]);
    await cli(["image", "promote", "bench-1", "--as", "bench"]);
    await cli(["image", "warm", "bench"]);
    const idle = await settledMemory(pid);
    console.log(`pools warm; idle RSS ${mib(idle.settled.rss)}; timing 10 creates`);

    const create: { wallMs: number; serverMs?: number; waitMs?: number; createTotalMs?: number }[] = [];
    for (let i = 0; i < 10; i++) {
      await cli(["image", "warm", "bench"]); // the pool refills after each create: measure from a full pool
      const r = await cli(["--json", "vm", "create", "--no-wait", "--image", "bench", "--name", `cli-${i}`]);
      const t = /banger-timing: (\{.*\})/.exec(r.stderr);
      const timing = t ? (JSON.parse(t[1]) as { serverMs: number; waitMs: number }) : undefined;
      const events = (JSON.parse(r.stdout) as { events: { op: string; stage: string; durationMs: number }[] }).events;
      create.push({
        wallMs: r.ms,
        serverMs: timing?.serverMs,
        waitMs: timing?.waitMs,
        createTotalMs: events.filter((e) => e.op === "create" && e.stage === "total").at(-1)?.durationMs,
      });
    }
    await cli(["image", "warm", "bench"]);
    console.log(`10 VMs; timing the CLI`);
    const times = interleaved(
      {
        "node -e 0": [process.execPath, "-e", "0"],
        "banger --help": [BANGER, "--help"],
        "banger --json vm ls": [BANGER, "--json", "vm", "ls"],
        "node bin/banger.js --json vm ls": [process.execPath, BIN_JS, "--json", "vm", "ls"],
        // What a shell runs at each Tab for VM names (src/cli/completion/names.ts).
        "banger __complete vms": [BANGER, "__complete", "vms"],
      },
      env,
    );

    console.log(`50 records, 5 running`);
    for (let i = 5; i < 10; i++) {
      const vm = (await api<{ vm: Vm }>(d.socket, "GET", `/v1/vms/cli-${i}`)).json.vm;
      if (vm.pid) process.kill(vm.pid, "SIGKILL");
    }
    await waitStates(d.socket, (vms) => vms.filter((v) => v.state === "running").length === 5, "5 running VMs");
    await addStoppedVms(d, "rec", 40);
    await cli(["image", "warm", "bench"]);
    const fifty = await settledMemory(pid);

    console.log(`${records} records`);
    await addStoppedVms(d, "more", records - 50);
    const list: { serverMs?: number; roundTripMs: number }[] = [];
    for (let i = 0; i < Math.max(runs, 30); i++) {
      const t0 = performance.now();
      const r = await api<{ vms: Vm[] }>(d.socket, "GET", "/v1/vms");
      list.push({ roundTripMs: performance.now() - t0, serverMs: r.serverMs });
      if (r.json.vms.length !== records) throw new Error(`expected ${records} VMs, got ${r.json.vms.length}`);
    }
    const many = await settledMemory(pid);

    for (const vm of (await api<{ vms: Vm[] }>(d.socket, "GET", "/v1/vms")).json.vms.filter((v) => v.state === "running")) {
      await api(d.socket, "DELETE", `/v1/vms/${vm.name}?force=true`);
    }

    const node = median(times["node -e 0"].map((t) => t.ms));
    const row = (label: string, ms: number, target: string) =>
      console.log(`  ${label.padEnd(36)} ${fmt(ms).padStart(10)}  ${(ms / node).toFixed(2)}× node -e 0   ${target}`);
    console.log(`\n== CLI wall time, median of ${runs} (interleaved; node ${process.version})`);
    for (const [k, ts] of Object.entries(times)) {
      const target =
        k === "banger --help"
          ? "(target ≤ 80 ms)"
          : k === "banger --json vm ls"
            ? "(target ≤ 100 ms and ≤ 2.0×)"
            : k === "banger __complete vms"
              ? "(target ≤ 100 ms)"
              : "";
      row(k, median(ts.map((t) => t.ms)), target);
    }
    const own = create.map((c) => (c.waitMs === undefined ? NaN : c.wallMs - c.waitMs - node));
    const ownStrict = create.map((c) => (c.serverMs === undefined ? NaN : c.wallMs - c.serverMs - node));
    console.log(`\n== banger --json vm create --no-wait (10 creates, fake Firecracker, warm pools)`);
    console.log(
      `  wall ${fmt(median(create.map((c) => c.wallMs)))}; daemon's create total ${fmt(median(create.map((c) => c.createTotalMs ?? NaN)))}; its requests: server time ${fmt(median(create.map((c) => c.serverMs ?? NaN)))}, waited on ${fmt(median(create.map((c) => c.waitMs ?? NaN)))}`,
    );
    console.log(`  CLI's own (wall − waited on the daemon − node -e 0): ${fmt(median(own))}   (target ≤ 20 ms)`);
    console.log(`  the same counting only server time as the daemon's (queueing and transport as the CLI's): ${fmt(median(ownStrict))}`);
    console.log(`\n== bangerd memory (pid ${pid})`);
    for (const [label, m] of [
      ["idle, pools warm", idle],
      ["50 records, 5 running", fifty],
      [`${records} records, 5 running`, many],
    ] as const) {
      const target = label.startsWith("idle") ? "(target ≤ 60 MiB)" : label.startsWith("50") ? "(target ≤ 120 MiB)" : "";
      console.log(
        `  ${label.padEnd(26)} RSS ${mib(m.settled.rss).padStart(10)} (anon ${mib(m.settled.anon)}, file ${mib(m.settled.file)}; ${mib(m.early.rss)} at 3 s)   ${target}`,
      );
    }
    console.log(`\n== GET /v1/vms with ${records} VMs, median of ${list.length}`);
    console.log(`  server time ${fmt(median(list.map((l) => l.serverMs ?? NaN)))} (target ≤ 5 ms), round trip ${fmt(median(list.map((l) => l.roundTripMs)))}`);

    const summary = Object.fromEntries(
      Object.entries(times).map(([k, ts]) => [
        k,
        { medianMs: median(ts.map((t) => t.ms)), ratioVsNode: median(ts.map((t) => t.ms)) / node, samples: ts.map((t) => t.ms) },
      ]),
    );
    writeReport("cli", {
      runs,
      node: process.version,
      cli: summary,
      create: { ownMedianMs: median(own), ownCountingServerTimeOnlyMs: median(ownStrict), samples: create },
      memory: { idle, fifty, [`records${records}`]: many },
      listVms: {
        records,
        serverMedianMs: median(list.map((l) => l.serverMs ?? NaN)),
        roundTripMedianMs: median(list.map((l) => l.roundTripMs)),
        samples: list,
      },
    });
  } finally {
    await d.destroy();
    rmSync(art, { recursive: true, force: true });
  }
}

runMain(main);
