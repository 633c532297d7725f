import { chmodSync, chownSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { getRequestListener } from "@hono/node-server";
import { Hono } from "hono";
import pino from "pino";
import type { LoadedConfig } from "../config/load.js";
import { connectUpgrade } from "../api/connect.js";
import { apiRoutes } from "../api/routes.js";
import { ImageService } from "../app/images.js";
import { EventBus } from "../app/event-bus.js";
import { SnapshotKeeper } from "../app/snapshot-keeper.js";
import { LivenessWatcher } from "../app/liveness.js";
import { reconcile } from "../app/reconcile.js";
import { rotateConsoles } from "../app/retention.js";
import { VERSION } from "../version.js";
import { acquireDaemonLock } from "./lock.js";
import type { Socket } from "node:net";
import { PeerCredentials } from "../adapters/peer/peer-cred.js";
import { ExecRunner } from "../adapters/exec/runner.js";
import { hostPrepareConfig, wire } from "./wire.js";
import { prepareHost } from "../app/host-prepare.js";
import { LinuxHostSetup } from "../adapters/host/setup.js";
import { startWebListener, type WebHandle } from "./web.js";
import { startMetrics } from "./metrics.js";
import { metricsRoute, requestTiming } from "../api/metrics-route.js";

/** How often the reconciler looks for VMM processes that ended on their own. */
const LIVENESS_INTERVAL_MS = 1_000;
/** A stop is bounded at about 35 s; past this the next daemon start reconciles what is left. */
const SHUTDOWN_DRAIN_MS = 60_000;

function groupId(name: string): number | undefined {
  try {
    const line = readFileSync("/etc/group", "utf8")
      .split("\n")
      .find((l) => l.startsWith(`${name}:`));
    return line ? Number(line.split(":")[2]) : undefined;
  } catch {
    return undefined;
  }
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Stamps each answer with `Server-Timing: app;dur=<ms>`, the daemon's time from the request
 * event to the response head: routing, the use case and the JSON encoding, all but the socket
 * write. bench/cli.ts reads it, and the CLI reports it under BANGER_TIMING.
 */
function withServerTiming(listener: (req: IncomingMessage, res: ServerResponse) => unknown) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const t0 = performance.now();
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      if (!this.headersSent) this.setHeader("Server-Timing", `app;dur=${(performance.now() - t0).toFixed(2)}`);
      return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    } as ServerResponse["writeHead"];
    void listener(req, res);
  };
}

export async function runDaemon(cfg: LoadedConfig): Promise<void> {
  mkdirSync(cfg.paths.stateDir, { recursive: true });
  const log = pino(
    { level: cfg.config.log_level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.multistream([{ stream: process.stderr }, { stream: pino.destination({ dest: cfg.paths.logFile, mkdir: true, sync: false }) }]),
  );
  const releaseLock = await acquireDaemonLock(cfg.paths.lockFile, cfg.paths.socket);
  const bus = new EventBus();
  // Before wire: it resolves vmm_user, which this may have just created.
  const setup = await prepareHost(new LinuxHostSetup(new ExecRunner()), hostPrepareConfig(cfg), log);
  const deps = wire(cfg, log, bus, setup);
  // Subscribed before anything runs a plan: startup's pool refills are counted too.
  const metrics = await startMetrics(cfg, log, deps, bus);
  const t0 = performance.now();
  await deps.network.ensureHost();
  const report = await reconcile(deps);
  await rotateConsoles(deps);
  const images = new ImageService(deps);
  await images.reconcileQuick();
  await deps.diskPool.adopt(deps.store.listImages());
  // Keep disks warm for what users create from: promoted images.
  for (const img of deps.store.listImages()) if (img.aliases.length > 0) deps.diskPool.refill(img);
  // Reconcile discarded the previous daemon's paused members; restore new ones in the background.
  deps.vmPool.refill();
  log.info({ stage: "startup", ms: Math.round(performance.now() - t0), ...report }, "host reconciled");
  // Golden snapshots wanted by the config or an image, taken in the background between creates.
  const keeper = new SnapshotKeeper(deps);
  const liveness = new LivenessWatcher(deps, LIVENESS_INTERVAL_MS);
  liveness.start();

  let server: Server | undefined;
  let web: WebHandle | undefined;
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, "bangerd shutting down; VMs keep running and are adopted at next start");
    server?.close();
    await web?.close().catch(() => undefined);
    await metrics.close().catch(() => undefined);
    await liveness.stop();
    keeper.close();
    // Paused members are discarded now rather than left to the next start: they hold memory, and no
    // daemon would resume them. Before the drain, which refuses the locks a discard takes.
    await deps.vmPool.close().catch((e: unknown) => log.error({ stage: "vm-pool", err: (e as Error).message }, "could not discard the paused pool"));
    // Creates and starts are cancelled and undo themselves; stops and deletes finish. All of it
    // before the store closes, so no rollback is cut off half way.
    const stuck = await deps.ops.drain(SHUTDOWN_DRAIN_MS);
    if (stuck.length > 0) log.error({ vms: stuck, ms: SHUTDOWN_DRAIN_MS }, "operations still running at shutdown; the next start reconciles them");
    await deps.forwarder.closeAll().catch(() => undefined);
    await deps.network.close().catch(() => undefined);
    await deps.diskPool.close().catch(() => undefined);
    deps.store.close();
    releaseLock();
    log.flush();
    // Let the cancelled requests' answers reach their clients.
    setTimeout(() => process.exit(0), 200).unref();
  };

  const stop = () => void shutdown("api request");
  web = await startWebListener(cfg, log, (host) => apiRoutes(deps, { shutdown: stop, bus, host, flavour: "browser" }), { deps, bus });
  const app = new Hono();
  const peers = new PeerCredentials(new ExecRunner());
  const apiGroup = { name: cfg.config.api_group, gid: groupId(cfg.config.api_group) };
  const identify = (env: unknown) => peers.of((env as { incoming: IncomingMessage }).incoming.socket as Socket);
  // Before the routes: a middleware times only what is registered after it.
  app.use("*", requestTiming(metrics.metrics));
  metricsRoute(app, metrics.metrics, { identify, apiGroup });
  app.route(
    "/v1",
    apiRoutes(deps, {
      shutdown: stop,
      bus,
      host: web.info,
      webLogin: web.login,
      identify,
      apiGroup,
      checks: metrics.check,
    }),
  );
  mkdirSync(dirname(cfg.paths.socket), { recursive: true, mode: 0o755 });
  server = createServer(withServerTiming(getRequestListener(app.fetch)));
  // A create waits for a guest boot; the default 5-minute request timeout would cut long TCG boots short.
  server.requestTimeout = 0;
  // Guest streams (GET /v1/vms/:name/connect) leave HTTP by an Upgrade; Node hands those here.
  server.on("upgrade", connectUpgrade(deps, { identify: (s) => peers.of(s), apiGroup }, metrics.metrics));
  await listen(server, cfg.paths.socket);
  chmodSync(cfg.paths.socket, 0o660);
  const gid = groupId(cfg.config.api_group);
  if (gid !== undefined) chownSync(cfg.paths.socket, process.getuid?.() ?? 0, gid);
  else log.warn({ api_group: cfg.config.api_group }, "api_group does not exist: only root can use the socket (`banger doctor --fix` creates it)");
  log.info({ socket: cfg.paths.socket, version: VERSION, vmm: cfg.config.vmm }, "bangerd listening");
  keeper.start(bus);

  for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => void shutdown(sig));
  // Full checksums are too slow for start-up; verify in the background and mark broken images.
  void images.verifyChecksums().catch((e) => log.warn({ err: (e as Error).message }, "checksum verification failed"));
}
