import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { BANGERD, built, runIn, startTestDaemon, testConfig, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";
import { find, parseMetrics } from "../helpers/prom-text.js";
import type { LifecycleEvent } from "../../src/domain/types.js";

const skip = netnsSkipReason() ?? built();
const METRICS_PORT = 19464;

/** GET over bangerd's Unix socket, as a scraper on the host (root) would. */
async function overSocket(socket: string, path: string): Promise<{ status: number; type: string; body: string }> {
  const client = new Client("http://bangerd", { socketPath: socket, headersTimeout: 30_000, bodyTimeout: 30_000 });
  try {
    const r = await client.request({ method: "GET", path });
    return { status: r.statusCode, type: String(r.headers["content-type"]), body: await r.body.text() };
  } finally {
    await client.close();
  }
}

/**
 * The real daemon (real SQLite, TAPs, disks) with the fake firecracker: a create, a stop and a
 * failed create, then `GET /metrics` read with a Prometheus text-format parser. Every lifecycle
 * stage the bus carried must be in the stage histogram exactly once, and the operation counters
 * must hold exactly those three operations.
 */
describe.skipIf(skip)(`metrics from a running daemon${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let art: string;
  let dir: string;
  const seen: LifecycleEvent[] = [];
  let feed: AbortController | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "banger-metrics-"));
    const configText = `${testConfig(dir, { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 2 })}[metrics]\nlisten = "127.0.0.1:${METRICS_PORT}"\n`;
    d = await startTestDaemon({ dir, configText, env: FAKE_FC_ENV });
    art = mkdtempSync(join(tmpdir(), "banger-metrics-art-"));
    expect((await d.cli(fakeImageArgs(art, "fake-1"))).stderr).toBe("");
    // What the bus publishes, read the way any client reads it: the events stream.
    feed = new AbortController();
    const client = new Client("http://bangerd", { socketPath: d.socket, bodyTimeout: 0 });
    const r = await client.request({ method: "GET", path: "/v1/events", signal: feed.signal });
    let buf = "";
    r.body.on("data", (b: Buffer) => {
      buf += b.toString();
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const msg = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (/^event: stage$/m.test(msg)) seen.push((JSON.parse(/^data: (.*)$/m.exec(msg)![1]) as { event: LifecycleEvent }).event);
      }
    });
    r.body.on("error", () => undefined);
  }, 120_000);
  afterAll(async () => {
    feed?.abort();
    await d?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it("counts a create, a stop and a failed create, and every stage of them", async () => {
    const ok = await d.cli(["--json", "vm", "create", "--image", "fake-1", "--name", "m1", "--no-wait", "-p", "127.0.0.1:18080:80"], { timeoutMs: 120_000 });
    expect(ok.stderr).toBe("");
    expect((await d.cli(["vm", "stop", "m1"], { timeoutMs: 120_000 })).code).toBe(0);
    // The same host port again: refused at the forwards stage, after the lease was taken (and undone).
    const bad = await d.cli(["--json", "vm", "create", "--image", "fake-1", "--name", "m2", "--no-wait", "-p", "127.0.0.1:18080:80"], { timeoutMs: 120_000 });
    expect(bad.code).toBe(1);
    const code = (JSON.parse(bad.stdout || bad.stderr) as { error: { code: string; stage?: string } }).error.code;
    expect(code).toMatch(/^[A-Z_]+$/);

    const stored = (await d.cli(["--json", "vm", "events", "m1"])).json<{ events: LifecycleEvent[] }>().events;
    // The stream is asynchronous: wait until it has what the store kept for m1 and m2's end.
    for (
      let i = 0;
      i < 100 && !(seen.filter((e) => e.vmName === "m1").length >= stored.length && seen.some((e) => e.vmName === "m2" && e.outcome === "failed"));
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen.filter((e) => e.vmName === "m1").map((e) => [e.op, e.stage, e.outcome])).toEqual(stored.map((e) => [e.op, e.stage, e.outcome]));

    const scrape = await overSocket(d.socket, "/metrics");
    expect(scrape.status).toBe(200);
    expect(scrape.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parseMetrics(scrape.body);

    // Operations: exactly the three, by their boot path, and the one failure under its code.
    const ops = m
      .get("banger_operations_total")!
      .metrics.map((s) => [s.labels!.op, s.labels!.path, s.value])
      .sort();
    expect(ops).toEqual([
      ["create", "cold", "2"],
      ["stop", "none", "1"],
    ]);
    expect(m.get("banger_operation_failures_total")!.metrics.map((s) => [s.labels!.op, s.labels!.path, s.labels!.code, s.value])).toEqual([
      ["create", "cold", code, "1"],
    ]);

    // Stage histogram: one observation per event the bus carried, under the same labels, nothing else.
    expect(m.histograms.has("banger_stage_duration_seconds")).toBe(true);
    const want = new Map<string, number>();
    for (const e of seen) {
      const k = JSON.stringify([e.op, e.stage, e.path ?? "none", e.vmm ?? "none", e.outcome]);
      want.set(k, (want.get(k) ?? 0) + 1);
    }
    const got = new Map(
      m.get("banger_stage_duration_seconds_count")!.metrics.map((s) => {
        const l = s.labels!;
        return [JSON.stringify([l.op, l.stage, l.path, l.vmm, l.outcome]), Number(s.value)];
      }),
    );
    expect(got).toEqual(want);
    expect(find(m.get("banger_stage_duration_seconds_count"), { op: "create", stage: "forwards", outcome: "failed" })?.value).toBe("1");
    expect(find(m.get("banger_stage_duration_seconds_count"), { op: "create", stage: "total", path: "cold", vmm: "firecracker" })?.value).toBe("1");

    // Collected at scrape: m1 is stopped, m2 never stayed; the process metrics are there.
    expect(m.get("banger_vms")!.metrics.map((s) => [s.labels!.state, s.labels!.image, s.labels!.role, s.value])).toEqual([["stopped", "fake-1", "user", "1"]]);
    expect(Number(find(m.get("banger_pool_ready"), { pool: "tap" })?.value)).toBeGreaterThanOrEqual(0);
    expect(Number(m.get("process_resident_memory_bytes")!.metrics[0].value)).toBeGreaterThan(10 * 1024 * 1024);
    expect(m.get("nodejs_eventloop_lag_seconds")).toBeDefined();
    // Request latency by route pattern: the VM's name is not a label value anywhere.
    expect(find(m.get("banger_http_request_duration_seconds_count"), { route: "/v1/vms/:name/stop", method: "POST", status: "200" })?.value).toBe("1");
    expect(scrape.body).not.toMatch(/m1|m2/);
  });

  it("serves the same exposition on the configured loopback TCP address, inside the daemon's namespace", async () => {
    const r = await runIn(d.ns, "curl", ["-sS", "--max-time", "10", `http://127.0.0.1:${METRICS_PORT}/metrics`]);
    expect(r.code).toBe(0);
    const m = parseMetrics(r.stdout);
    expect(m.get("banger_operations_total")?.type).toBe("COUNTER");
    expect(find(m.get("banger_operations_total"), { op: "stop" })?.value).toBe("1");
    const other = await runIn(d.ns, "curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", `http://127.0.0.1:${METRICS_PORT}/v1/vms`]);
    expect(other.stdout).toBe("404");
    const doc = (await d.cli(["--json", "doctor"], { timeoutMs: 120_000 })).json<{ checks: { name: string; status: string; detail: string }[] }>();
    expect(doc.checks.find((c) => c.name === "metrics")).toMatchObject({ status: "PASS", detail: expect.stringContaining(`127.0.0.1:${METRICS_PORT}`) });
  });

  it("refuses a non-loopback metrics.listen without metrics.allow_remote, naming the fix", async () => {
    const cfgDir = mkdtempSync(join(tmpdir(), "banger-metrics-remote-"));
    try {
      const { writeFileSync } = await import("node:fs");
      const path = join(cfgDir, "config.toml");
      writeFileSync(path, `${testConfig(cfgDir)}[metrics]\nlisten = "0.0.0.0:${METRICS_PORT + 1}"\n`);
      const r = await runIn(d.ns, BANGERD, [], { env: { BANGER_CONFIG: path }, timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/INVALID_CONFIG|metrics\.listen/);
      expect(r.stderr).toMatch(/metrics\.listen 0\.0\.0\.0:\d+ is not a loopback address/);
      expect(r.stderr).toMatch(/metrics\.allow_remote = true/);
      // Nothing listens there: the daemon never got as far as binding.
      const probe = await runIn(d.ns, "curl", ["-sS", "--max-time", "3", `http://127.0.0.1:${METRICS_PORT + 1}/metrics`]);
      expect(probe.code).not.toBe(0);
    } finally {
      rmSync(cfgDir, { recursive: true, force: true });
    }
  });
});
