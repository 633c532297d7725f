import { totalmem } from "node:os";
import type { Hono } from "hono";
import type { ApiEnv } from "./env.js";
import { streamSSE } from "hono/streaming";
import type { AppDeps } from "../app/deps.js";
import type { EventBus, Sequenced } from "../app/event-bus.js";
import type { Check } from "../app/doctor.js";
import { VERSION } from "../version.js";

/** A comment line this often keeps proxies and idle-timeouts from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;
/** A listener that falls this far behind (a stalled tab) is cut off; it reconnects and refetches. */
const MAX_QUEUED = 1000;

export interface HostInfo {
  /** The config in effect, key → {value, source}, with secrets redacted. */
  config: Record<string, { value: unknown; source: string }>;
  /** The web listener's state, for doctor and the host page. */
  web(): Check;
}

const SECRET = /token|secret|password|credential/i;

export function redact(config: HostInfo["config"]): HostInfo["config"] {
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, SECRET.test(k) ? { ...v, value: "(redacted)" } : v]));
}

/**
 * `GET /v1/events` (Server-Sent Events: every VM change and lifecycle stage as it is recorded)
 * and `GET /v1/host` (what the host page and `banger host` show).
 */
export function liveRoutes(
  api: Hono<ApiEnv>,
  d: Pick<AppDeps, "network" | "diskPool" | "vmPool" | "store" | "config" | "host">,
  bus: EventBus,
  host?: HostInfo,
): void {
  api.get("/events", (c) => {
    c.header("X-Accel-Buffering", "no");
    return streamSSE(c, async (stream) => {
      const queue: Sequenced[] = [];
      let wake: (() => void) | undefined;
      let overflow = false;
      const unsubscribe = bus.subscribe((e) => {
        if (queue.length >= MAX_QUEUED) overflow = true;
        else queue.push(e);
        wake?.();
      });
      const closed = new Promise<void>((resolve) => {
        stream.onAbort(resolve);
        c.req.raw.signal.addEventListener("abort", () => resolve());
      });
      let done = false;
      void closed.then(() => {
        done = true;
        wake?.();
      });
      const beat = setInterval(() => wake?.(), HEARTBEAT_MS);
      try {
        // The snapshot a client needs to start from; later changes follow as events.
        await stream.writeSSE({ event: "hello", data: JSON.stringify({ version: VERSION, vms: d.store.listVms() }) });
        while (!done && !overflow) {
          if (queue.length === 0) {
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
            if (queue.length === 0 && !done) await stream.write(": keep-alive\n\n");
            continue;
          }
          const e = queue.shift()!;
          const { seq, type, ...rest } = e;
          await stream.writeSSE({ event: type, id: String(seq), data: JSON.stringify(rest) });
        }
        if (overflow) await stream.writeSSE({ event: "overflow", data: "{}" });
      } finally {
        clearInterval(beat);
        unsubscribe();
      }
    });
  });

  api.get("/host", async (c) => {
    const [net, disks] = await Promise.all([d.network.status().catch(() => undefined), d.diskPool.usage().catch(() => undefined)]);
    const names = (ids: string[]) => ids.map((id) => d.store.getImageById(id)?.name ?? id);
    return c.json({
      version: VERSION,
      vmm: d.config.vmm,
      pid: process.pid,
      rssBytes: process.memoryUsage.rss(),
      uptimeS: Math.round(process.uptime()),
      memory: { totalMib: Math.round(totalmem() / 1048576), availableMib: d.host.memAvailableMib() },
      config: host ? redact(host.config) : {},
      web: host?.web(),
      pool: {
        taps: net ? { idle: net.poolIdle.length, size: d.config.tapPoolSize, total: net.taps.length } : undefined,
        disks: disks
          ? {
              sets: Object.fromEntries(Object.entries(disks.sets).map(([id, n]) => [d.store.getImageById(id)?.name ?? id, n])),
              bytes: disks.bytes,
              maxBytes: disks.maxBytes,
              capped: names(disks.capped),
            }
          : undefined,
        vms: vmPoolView(d),
      },
    });
  });
}

/** The paused-VM pool for `GET /v1/host`: members per image name, and the memory they hold. */
function vmPoolView(d: Pick<AppDeps, "vmPool" | "store">) {
  const s = d.vmPool.stats();
  const name = (id: string) => d.store.getImageById(id)?.name ?? id;
  return {
    size: s.size,
    members: Object.fromEntries(Object.entries(s.members).map(([id, n]) => [name(id), n])),
    memoryMib: s.memoryMib,
    maxMemoryMib: s.maxMemoryMib,
    ...(s.filling ? { filling: s.filling } : {}),
  };
}
