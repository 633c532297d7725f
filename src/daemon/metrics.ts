import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import type { LoadedConfig } from "../config/load.js";
import type { AppDeps } from "../app/deps.js";
import type { Check } from "../app/doctor.js";
import type { EventBus } from "../app/event-bus.js";
import { PrometheusMetrics } from "../adapters/metrics/prometheus.js";
import { metricsBindVerdict, type MetricsSettings } from "../domain/metrics-bind.js";
import type { WebBind } from "../domain/web-bind.js";

export interface MetricsHandle {
  metrics: PrometheusMetrics;
  /** Doctor's `metrics` line: where the TCP listener serves, or why it does not. */
  check(): Check;
  close(): Promise<void>;
}

export function metricsSettings(cfg: LoadedConfig): MetricsSettings {
  return { listen: cfg.config.metrics.listen, allowRemote: cfg.config.metrics.allow_remote };
}

/**
 * The daemon's metrics: fed by the event bus (stage events) and read from the store and the pools
 * at scrape time, so no use case calls into them. The TCP listener starts only when
 * `metrics.listen` asks for it; the socket's `GET /metrics` is always there (run.ts mounts it).
 */
export async function startMetrics(
  cfg: LoadedConfig,
  log: Logger,
  deps: Pick<AppDeps, "store" | "network" | "diskPool" | "vmPool">,
  bus: EventBus,
): Promise<MetricsHandle> {
  const metrics = new PrometheusMetrics({
    vms: () => deps.store.listVms(),
    taps: () => deps.network.poolStats(),
    disks: () => ({ sets: deps.diskPool.stats(), misses: deps.diskPool.misses }),
    pausedVms: () => deps.vmPool.stats(),
  });
  const unsubscribe = bus.subscribe((e) => {
    if (e.type === "stage") metrics.stage(e.event);
  });
  const settings = metricsSettings(cfg);
  // The config schema refuses a bad or remote listen already; this is the same rule, kept close to the bind.
  const verdict = metricsBindVerdict(settings);
  let server: Server | undefined;
  let error: string | undefined;
  if (verdict.bind) {
    try {
      server = await serveMetrics(verdict.bind, metrics);
      log.info({ stage: "metrics", listen: settings.listen }, "metrics listening");
    } catch (e) {
      error = (e as Error).message;
      log.error({ stage: "metrics", code: "METRICS_LISTEN", err: error }, "metrics listener not serving");
    }
  }
  const check = (): Check => {
    if (verdict.off) return { name: "metrics", status: "PASS", detail: `GET /metrics on the socket; no TCP listener (${verdict.off})` };
    if (verdict.refused) return { name: "metrics", status: "FAIL", detail: `not serving: ${verdict.refused}`, fix: verdict.fix };
    if (error)
      return {
        name: "metrics",
        status: "FAIL",
        detail: `not serving on ${settings.listen}: ${error}`,
        fix: "free the port or change metrics.listen, then restart bangerd",
      };
    if (!verdict.bind!.loopback) {
      return {
        name: "metrics",
        status: "WARN",
        detail: `serving http://${settings.listen}/metrics beyond loopback (metrics.allow_remote = true), without authentication`,
        fix: "firewall the port to your scraper, or bind 127.0.0.1",
      };
    }
    return { name: "metrics", status: "PASS", detail: `serving http://${settings.listen}/metrics (loopback) and GET /metrics on the socket` };
  };
  return {
    metrics,
    check,
    close: async () => {
      unsubscribe();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    },
  };
}

/** The TCP listener: `GET /metrics` and nothing else, no authentication (hence loopback by default). */
function serveMetrics(bind: WebBind, metrics: PrometheusMetrics): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(path === "/metrics" ? 405 : 404, { "Content-Type": "text/plain" }).end("GET /metrics\n");
      return;
    }
    metrics.render().then(
      ({ contentType, body }) => res.writeHead(200, { "Content-Type": contentType }).end(req.method === "HEAD" ? undefined : body),
      (e: unknown) => res.writeHead(500, { "Content-Type": "text/plain" }).end(`${(e as Error).message}\n`),
    );
  });
  // A scraper that stalls must not hold a socket open for ever.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(bind.port, bind.host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
