import { Counter, Gauge, Histogram, Registry } from "prom-client";
import eventLoopLag from "prom-client/lib/metrics/eventLoopLag.js";
import osMemoryHeap from "prom-client/lib/metrics/osMemoryHeap.js";
import processCpuTotal from "prom-client/lib/metrics/processCpuTotal.js";
import processOpenFileDescriptors from "prom-client/lib/metrics/processOpenFileDescriptors.js";
import processStartTime from "prom-client/lib/metrics/processStartTime.js";
import type { LifecycleEvent, Vm } from "../../domain/types.js";
import type { ChannelDirection, ChannelMetrics, MetricsExposition, RequestMetrics } from "../../ports/metrics.js";

/** What the collect-time gauges read at each scrape: in-memory state and one store query, no host command. */
export interface MetricSources {
  vms(): Vm[];
  taps(): { idle: number; size: number; misses: number };
  disks(): { sets: Record<string, number>; misses: number };
  pausedVms(): { members: Record<string, number>; memoryMib: number; misses: number };
}

/** Lifecycle stages take from a millisecond (a store write) to minutes (a TCG boot, an image build). */
const STAGE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];
/** API answers are sub-millisecond reads up to creates that wait for a guest. */
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

const sum = (r: Record<string, number>) => Object.values(r).reduce((n, x) => n + x, 0);

/**
 * bangerd's metrics on a private prom-client registry. Events feed the counters and histograms as
 * they happen; VM and pool gauges are read from `sources` at scrape time, so the hot paths pay
 * nothing for them. Every label takes values from a bounded set (docs/api.md, "Metrics").
 */
export class PrometheusMetrics implements RequestMetrics, ChannelMetrics, MetricsExposition {
  readonly registry = new Registry();
  private readonly stages: Histogram<"op" | "stage" | "path" | "vmm" | "outcome">;
  private readonly ops: Counter<"op" | "path">;
  private readonly failures: Counter<"op" | "path" | "code">;
  private readonly http: Histogram<"route" | "method" | "status">;
  private readonly sessionsOpen: Gauge;
  private readonly sessions: Counter;
  private readonly bytesTotal: Counter<"direction">;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    // The process metrics worth their cost; prom-client's GC observer, heap-space and handle gauges are left out.
    for (const register of [osMemoryHeap, eventLoopLag, processCpuTotal, processStartTime, processOpenFileDescriptors]) register(this.registry);

    this.stages = new Histogram({
      name: "banger_stage_duration_seconds",
      help: "Duration of each lifecycle stage (and `total` of a finished operation), by operation, boot path and VMM.",
      labelNames: ["op", "stage", "path", "vmm", "outcome"],
      buckets: STAGE_BUCKETS,
      registers,
    });
    this.ops = new Counter({
      name: "banger_operations_total",
      help: "Finished lifecycle operations (create, start, stop, pool-fill restores, ...), succeeded or failed.",
      labelNames: ["op", "path"],
      registers,
    });
    this.failures = new Counter({
      name: "banger_operation_failures_total",
      help: "Lifecycle operations that failed, by the error code of the stage that failed.",
      labelNames: ["op", "path", "code"],
      registers,
    });
    this.http = new Histogram({
      name: "banger_http_request_duration_seconds",
      help: "API request latency by route pattern, method and status.",
      labelNames: ["route", "method", "status"],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.sessionsOpen = new Gauge({ name: "banger_guest_channel_sessions", help: "Guest channel streams open now.", registers });
    this.sessions = new Counter({ name: "banger_guest_channel_sessions_total", help: "Guest channel streams opened.", registers });
    this.bytesTotal = new Counter({
      name: "banger_guest_channel_bytes_total",
      help: "Bytes carried by guest channel streams, by direction.",
      labelNames: ["direction"],
      registers,
    });
    // Both directions from the start, so a rate() has a series before the first stream.
    for (const direction of ["to_guest", "from_guest"] as const) this.bytesTotal.inc({ direction }, 0);

    new Gauge({
      name: "banger_vms",
      help: "VMs by state, image and role (user, pool: a paused pool member, builder: an image build or snapshot).",
      labelNames: ["state", "image", "role"],
      registers,
      collect() {
        // Reset first: the series of a removed image or an emptied state go away instead of freezing.
        this.reset();
        for (const vm of sources.vms()) this.inc({ state: vm.state, image: vm.imageName, role: vm.role ?? "user" });
      },
    });
    const pools = () => ({ tap: sources.taps(), disk: sources.disks(), vm: sources.pausedVms() });
    new Gauge({
      name: "banger_pool_ready",
      help: "Ready members of each warm pool: idle TAP devices, disk sets, paused VMs (all images together).",
      labelNames: ["pool"],
      registers,
      collect() {
        const p = pools();
        this.set({ pool: "tap" }, p.tap.idle);
        this.set({ pool: "disk" }, sum(p.disk.sets));
        this.set({ pool: "vm" }, sum(p.vm.members));
      },
    });
    new Gauge({
      name: "banger_pool_vm_memory_bytes",
      help: "Guest memory held by paused pool members.",
      registers,
      collect() {
        this.set(sources.pausedVms().memoryMib * 1024 * 1024);
      },
    });
    new Counter({
      name: "banger_pool_misses_total",
      help: "Takes from an enabled warm pool that found nothing ready (the create made its own).",
      labelNames: ["pool"],
      registers,
      collect() {
        // The pools count their own misses; mirrored here as a counter, which they only ever raise.
        const p = pools();
        this.reset();
        this.inc({ pool: "tap" }, p.tap.misses);
        this.inc({ pool: "disk" }, p.disk.misses);
        this.inc({ pool: "vm" }, p.vm.misses);
      },
    });
  }

  /** One recorded lifecycle stage, as the event bus carries it. */
  stage(e: LifecycleEvent): void {
    const path = e.path ?? "none";
    // An undo's label may name a host port (`undo:forward 8080`); its kind is the bounded part.
    const stage = e.stage.replace(/ .*$/, "");
    this.stages.observe({ op: e.op, stage, path, vmm: e.vmm ?? "none", outcome: e.outcome }, e.durationMs / 1000);
    // A plan stops at its first failed stage; the undos after it are not the operation's end.
    if (e.stage.startsWith("undo:")) return;
    if (e.stage === "total") this.ops.inc({ op: e.op, path });
    else if (e.outcome === "failed") {
      this.ops.inc({ op: e.op, path });
      this.failures.inc({ op: e.op, path, code: e.code ?? "INTERNAL" });
    }
  }

  request(route: string, method: string, status: number, seconds: number): void {
    this.http.observe({ route, method, status: String(status) }, seconds);
  }

  opened(): void {
    this.sessions.inc();
    this.sessionsOpen.inc();
  }

  closed(): void {
    this.sessionsOpen.dec();
  }

  bytes(direction: ChannelDirection, n: number): void {
    this.bytesTotal.inc({ direction }, n);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
