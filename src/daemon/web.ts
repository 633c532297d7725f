import { join } from "node:path";
import type { Logger } from "pino";
import type { LoadedConfig } from "../config/load.js";
import type { Check } from "../app/doctor.js";
import type { HostInfo } from "../api/live-routes.js";
import { webBindVerdict, type WebSettings } from "../domain/web-bind.js";
import type { Hono } from "hono";
import type { ApiEnv } from "../api/env.js";
import type { AppDeps } from "../app/deps.js";
import type { EventBus } from "../app/event-bus.js";
import { getVm } from "../app/vm-lookup.js";
import { BangerError } from "../domain/errors.js";

/** The running VM's HTTP service behind a guest proxy, or the API's error saying why not. */
export function guestTargetOf(d: Pick<AppDeps, "store">) {
  return (name: string, service: string) => {
    const vm = getVm(d, name);
    if (vm.state !== "running" || !vm.ip) {
      throw new BangerError("VM_STATE", `VM ${name} is ${vm.state}; its services are reachable only while it runs`, { hint: `\`banger vm start ${name}\`` });
    }
    const image = d.store.getImageById(vm.imageId);
    const svc = image?.guest.services.find((s) => s.name === service && s.port !== 22);
    if (!svc) {
      throw new BangerError("NOT_FOUND", `image ${image?.name ?? vm.imageName} declares no HTTP service ${service}`, {
        hint: "services come from `image register --service name:port`; ssh is reached with `banger vm ssh`",
      });
    }
    return { vmId: vm.id, vmName: vm.name, service, ip: vm.ip, port: svc.port };
  };
}

export interface WebHandle {
  info: HostInfo;
  login?: () => { url: string; expiresAt: string };
  close(): Promise<void>;
}

function flatten(obj: Record<string, unknown>, prefix = ""): [string, unknown][] {
  return Object.entries(obj).flatMap(([k, v]) =>
    v && typeof v === "object" && !Array.isArray(v) ? flatten(v as Record<string, unknown>, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]],
  );
}

export function webSettings(cfg: LoadedConfig): WebSettings {
  const w = cfg.config.web;
  return { enabled: w.enabled, listen: w.listen, allowRemote: w.allow_remote };
}

/**
 * Starts the web listener when the config asks for it. The UI's server code is imported only
 * then, so a daemon with the UI off never loads it. A listener that cannot start leaves the
 * daemon serving its socket; doctor says why.
 */
export async function startWebListener(
  cfg: LoadedConfig,
  log: Logger,
  browserApi: (info: HostInfo) => Hono<ApiEnv>,
  live?: { deps: Pick<AppDeps, "store">; bus: EventBus },
): Promise<WebHandle> {
  const settings = webSettings(cfg);
  const verdict = webBindVerdict(settings);
  let url: string | undefined;
  let error: string | undefined;
  let handle: { url: string; loginLink(): { url: string; expiresAt: string }; close(): Promise<void> } | undefined;
  const config = Object.fromEntries(
    flatten(cfg.config as Record<string, unknown>).map(([k, value]) => [k, { value, source: cfg.sources[k] ?? "default" }]),
  ) as HostInfo["config"];
  const info: HostInfo = { config, web };
  if (verdict.bind) {
    try {
      const [{ startWeb }, { assetsDir }] = await Promise.all([import("../web/server.js"), import("../web/assets.js")]);
      handle = await startWeb({
        bind: verdict.bind,
        tokenFile: join(cfg.paths.stateDir, "web-token"),
        assetsDir: assetsDir(),
        api: browserApi(info),
        log,
        guestTarget: live ? guestTargetOf(live.deps) : undefined,
        onVmStopped: live
          ? (close) =>
              live.bus.subscribe((e) => {
                if (e.type === "vm" && e.vm.state !== "running") close(e.vm.id);
                if (e.type === "vm-removed") close(e.id);
              })
          : undefined,
      });
      url = handle.url;
    } catch (e) {
      error = (e as Error).message;
      log.error({ stage: "web", err: error }, "web UI not serving");
    }
  } else if (verdict.refused) {
    log.error({ stage: "web", err: verdict.refused }, "web UI not serving");
  }
  function web(): Check {
    if (verdict.off) return { name: "web", status: "PASS", detail: `off (${verdict.off})` };
    if (verdict.refused) return { name: "web", status: "FAIL", detail: `not serving: ${verdict.refused}`, fix: verdict.fix };
    if (error) {
      return {
        name: "web",
        status: "FAIL",
        detail: `not serving on ${settings.listen}: ${error}`,
        fix: "free the port or change web.listen, run `make build` if the UI files are missing, then restart bangerd",
      };
    }
    if (!verdict.bind!.loopback) {
      return {
        name: "web",
        status: "WARN",
        detail: `serving ${url} beyond loopback (web.allow_remote = true): plain HTTP, guarded by the session cookie only`,
        fix: "put a TLS proxy in front, or bind 127.0.0.1 and use an SSH tunnel",
      };
    }
    return { name: "web", status: "PASS", detail: `serving ${url} (loopback); \`banger web\` prints a login link` };
  }
  return {
    info,
    login: handle ? () => handle.loginLink() : undefined,
    close: async () => handle?.close(),
  };
}
