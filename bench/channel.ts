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
 *
 * Then, with the guest's eth0 down so everything goes over the channel (banger-agent's multiplex):
 * - 1, 4 and 8 concurrent `banger vm exec <vm> -- true`, --runs rounds each: the median per command
 * - 64 MiB from a guest TCP port through `banger-vsock` (a perl server in the guest sends a blob
 *   made there), --runs times, checked byte for byte by sha256: MiB/s per run
 * The baseline for the stream, measured first while eth0 is still up: the same 64 MiB from the same
 * server straight over the guest's virtio-net NIC. Under TCG the guest's CPU bounds both, so the ratio
 * says what the channel itself costs.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { REPO, startTestDaemon, type TestDaemon } from "../test/helpers/daemon.js";
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
    const want = await blobServer(d);
    const ip = (await d.cli(["--json", "vm", "show", "bench"], { timeoutMs: 30_000 })).json<{ vm: { ip?: string } }>().vm.ip;
    if (!ip) throw new Error("vm show gave no IP for the bench VM");
    const overNic: number[] = [];
    for (let i = 0; i < runs; i++) overNic.push(await timedBlob(() => connect(5555, ip), want));
    await eth0Down(d);
    const concurrent = [];
    for (const n of [1, 4, 8]) {
      const perCommand: number[] = [];
      for (let i = 0; i < runs; i++) {
        const times = await Promise.all(
          Array.from({ length: n }, async () => {
            const t0 = performance.now();
            const r = await d.cli(["vm", "exec", "bench", "--", "true"], { timeoutMs: 300_000 });
            if (r.code !== 0) throw new Error(`vm exec (${n} at once) failed (${r.code}): ${r.stderr}`);
            return performance.now() - t0;
          }),
        );
        perCommand.push(...times);
      }
      concurrent.push({ concurrent: n, commands: perCommand.length, medianMs: median(perCommand), samplesMs: perCommand.map(Math.round) });
    }
    console.log(`\nvm exec -- true over virtio-serial (eth0 down), median per command:`);
    for (const c of concurrent)
      console.log(`  ${String(c.concurrent).padStart(2)} at once  ${c.medianMs.toFixed(0).padStart(6)} ms   (${c.commands} commands)`);
    const stream: number[] = [];
    for (let i = 0; i < runs; i++) stream.push(await timedBlob(() => vsockStream(d), want));
    const fmt = (xs: number[]) => `median ${median(xs).toFixed(1)} MiB/s; runs ${xs.map((x) => x.toFixed(1)).join(", ")}`;
    console.log(`\n64 MiB over the guest NIC (virtio-net, plain TCP): ${fmt(overNic)}`);
    console.log(`64 MiB through banger-vsock (virtio-serial): ${fmt(stream)}  x${(median(stream) / median(overNic)).toFixed(2)} of the NIC`);
    writeReport("channel", {
      runs,
      report,
      concurrent,
      streamMiBps: { median: median(stream), samples: stream },
      nicMiBps: { median: median(overNic), samples: overNic },
    });
    await d.cli(["vm", "rm", "bench", "--force"], { timeoutMs: 120_000 });
  } finally {
    await d.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

const BLOB_BYTES = 64 * 1024 * 1024;

/** Takes the guest's only NIC down a second after the command returns; waits until SSH goes over the channel. */
async function eth0Down(d: TestDaemon): Promise<void> {
  await d.cli(["vm", "exec", "bench", "--", "sh", "-c", "nohup sh -c 'sleep 1; ip link set eth0 down' >/dev/null 2>&1 &"], { timeoutMs: 120_000 });
  // An SSH session over the IP that the link drops under has no RST to end it: probe only once the link is surely down.
  await new Promise((res) => setTimeout(res, 5_000));
  for (let i = 0; i < 60; i++) {
    const r = await d.cli(["vm", "exec", "-v", "bench", "--", "cat", "/sys/class/net/eth0/operstate"], { timeoutMs: 30_000 });
    if (r.stdout.trim() === "down" && /via channel/.test(r.stderr)) return;
    await new Promise((res) => setTimeout(res, 1_000));
  }
  throw new Error("eth0 did not go down in the guest");
}

/** A 64 MiB random blob in the guest and a perl server on port 5555 (all addresses) that sends it to each connection; its sha256. */
async function blobServer(d: TestDaemon): Promise<string> {
  const script = [
    `head -c ${BLOB_BYTES} /dev/urandom >/tmp/blob || exit 1`,
    "sha256sum /tmp/blob | cut -d' ' -f1",
    `nohup perl -e 'use Socket; socket(S,PF_INET,SOCK_STREAM,0) or die; setsockopt(S,SOL_SOCKET,SO_REUSEADDR,1); ` +
      `bind(S,sockaddr_in(5555,INADDR_ANY)) or die; listen(S,4); while (accept(C,S)) { open(F,"<","/tmp/blob") or die; ` +
      `binmode F; binmode C; while (read(F,$b,65536)) { print C $b or last } close F; close C }' </dev/null >/dev/null 2>&1 &`,
    "for i in $(seq 1 300); do grep -q ':15B3 00000000:0000 0A' /proc/net/tcp && exit 0; sleep 0.1; done; exit 1",
  ].join("\n");
  const r = await d.cli(["vm", "exec", "bench", "--", "sh", "-c", script], { timeoutMs: 300_000 });
  if (r.code !== 0 || !/^[0-9a-f]{64}$/.test(r.stdout.trim())) throw new Error(`blob server failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

/** banger-vsock's stdout, as the stream a user of the channel gets. */
function vsockStream(d: TestDaemon): Readable {
  const child = spawn(join(REPO, "build/bin/banger-vsock"), ["--socket", d.socket, "bench", "5555"], { stdio: ["ignore", "pipe", "inherit"] });
  return child.stdout;
}

/** One 64 MiB read from `open()`; MiB/s of the whole read, after checking every byte. */
function timedBlob(open: () => Readable, want: string): Promise<number> {
  const t0 = performance.now();
  const src = open();
  const hash = createHash("sha256");
  let bytes = 0;
  src.on("data", (c: Buffer) => {
    bytes += c.length;
    hash.update(c);
  });
  return new Promise((resolve, reject) => {
    src.on("error", reject);
    src.on("close", () => {
      const ms = performance.now() - t0;
      const got = hash.digest("hex");
      if (bytes !== BLOB_BYTES || got !== want) return reject(new Error(`stream: ${bytes} bytes, sha256 ${got} (want ${want})`));
      resolve(BLOB_BYTES / 1048576 / (ms / 1000));
    });
  });
}
