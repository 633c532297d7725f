import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { PrometheusMetrics, type MetricSources } from "../../src/adapters/metrics/prometheus.js";
import { requestTiming } from "../../src/api/metrics-route.js";
import type { LifecycleEvent, Vm } from "../../src/domain/types.js";
import { find, parseMetrics, seriesCount } from "../helpers/prom-text.js";

function vm(i: number, state: Vm["state"] = "running"): Vm {
  const now = new Date().toISOString();
  return {
    id: `id-${i}`,
    name: `vm-${i}`,
    imageId: "img-1",
    imageName: "debian-1",
    state,
    vmm: "firecracker",
    vcpus: 1,
    memoryMib: 256,
    workDiskGib: 1,
    nat: false,
    dir: `/var/lib/banger/vms/id-${i}`,
    workSeedFallback: false,
    createdAt: now,
    updatedAt: now,
  };
}

function world(vms: Vm[]): MetricSources {
  return {
    vms: () => vms,
    taps: () => ({ idle: 2, size: 4, misses: 1 }),
    disks: () => ({ sets: { "img-1": 1 }, misses: 0 }),
    pausedVms: () => ({ members: {}, memoryMib: 0, misses: 0 }),
  };
}

const stage = (i: number, name: string, outcome: LifecycleEvent["outcome"] = "ok", code?: string): LifecycleEvent => ({
  vmId: `id-${i}`,
  vmName: `vm-${i}`,
  opId: i,
  op: "create",
  stage: name,
  startedAt: new Date().toISOString(),
  durationMs: 12 + i,
  outcome,
  vmm: "firecracker",
  path: "cold",
  ...(code ? { code } : {}),
});

/** One VM's worth of activity: its create's stages, one failed create, API calls naming it. */
async function activity(m: PrometheusMetrics, i: number): Promise<void> {
  for (const s of ["lease", "tap", "spawn", "total"]) m.stage(stage(i, s));
  m.stage(stage(1000 + i, "lease"));
  m.stage(stage(1000 + i, "tap", "failed", "NETWORK_FAILED"));
  m.stage(stage(1000 + i, "undo:lease", "undone"));
  m.stage(stage(1000 + i, `undo:forward ${20000 + i}`, "undone"));
  const app = new Hono();
  app.use("*", requestTiming(m));
  app.get("/v1/vms/:name", (c) => c.json({ name: c.req.param("name") }));
  await app.request(`/v1/vms/vm-${i}`);
  await app.request(`/v1/nothing/vm-${i}`);
  m.opened();
  m.bytes("to_guest", 10);
  m.closed();
}

describe("metrics labels stay bounded", () => {
  it("100 VMs (and their creates, failures, requests) add no series over 1 VM", async () => {
    const one = new PrometheusMetrics(world([vm(0)]));
    await activity(one, 0);
    const many = new PrometheusMetrics(world(Array.from({ length: 100 }, (_, i) => vm(i))));
    for (let i = 0; i < 100; i++) await activity(many, i);

    const a = parseMetrics((await one.render()).body);
    const b = parseMetrics((await many.render()).body);
    const banger = (f: typeof a) => new Map([...f].filter(([k]) => k.startsWith("banger_")));
    expect(seriesCount(banger(b))).toBe(seriesCount(banger(a)));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    // Same series, counted 100 times: the events were not lost, only kept off the labels.
    expect(find(b.get("banger_vms"), { state: "running", image: "debian-1", role: "user" })?.value).toBe("100");
    expect(find(b.get("banger_operations_total"), { op: "create", path: "cold" })?.value).toBe("200");
    expect(find(b.get("banger_operation_failures_total"), { op: "create", code: "NETWORK_FAILED" })?.value).toBe("100");
    expect(b.histograms.has("banger_http_request_duration_seconds")).toBe(true);
    expect(find(b.get("banger_http_request_duration_seconds_count"), { route: "/v1/vms/:name", status: "200" })?.value).toBe("100");
    expect(find(b.get("banger_guest_channel_bytes_total"), { direction: "to_guest" })?.value).toBe("1000");
    expect(find(b.get("banger_stage_duration_seconds_count"), { stage: "undo:forward" })?.value).toBe("100");
    // No label value anywhere is a VM's name or id.
    const text = (await many.render()).body;
    expect(text).not.toMatch(/vm-\d|id-\d|undo:forward \d/);
  });

  it("a VM in another state or of another image is one more series, not one per VM", async () => {
    const vms = Array.from({ length: 100 }, (_, i) => vm(i, i % 2 ? "running" : "stopped"));
    const m = new PrometheusMetrics(world(vms));
    const f = parseMetrics((await m.render()).body).get("banger_vms");
    expect(f?.metrics.map((s) => [s.labels?.state, s.value]).sort()).toEqual([
      ["running", "50"],
      ["stopped", "50"],
    ]);
  });
});
