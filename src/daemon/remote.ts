import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { honoListener } from "../api/node-listener.js";
import { Hono } from "hono";
import type { Logger } from "pino";
import type { LoadedConfig } from "../config/load.js";
import type { Check } from "../app/doctor.js";
import type { ApiEnv } from "../api/env.js";
import { errorResponse } from "../api/errors.js";
import { BangerError } from "../domain/errors.js";
import type { Caller } from "../domain/caller.js";
import { remoteBindVerdict, type RemoteSettings } from "../domain/remote-bind.js";

/**
 * Whoever holds the remote token acts as an operator: root's rights over every VM and image, but
 * no daemon shutdown, login links or guest streams (the remote flavour of the API leaves them out).
 */
export const REMOTE_CALLER: Caller = { uid: 0, gids: [0], name: "remote" };

export interface RemoteHandle {
  /** Doctor's `remote` line. */
  check(): Check;
  /** Where it listens (http://host:port), when it does. */
  url?: string;
  close(): Promise<void>;
}

export function remoteSettings(cfg: LoadedConfig): RemoteSettings {
  const r = cfg.config.remote;
  return { listen: r.listen, allowRemote: r.allow_remote, tokenFile: r.token_file || join(cfg.paths.stateDir, "remote-token") };
}

/** The token, created (0600, 32 random bytes as hex) when the file is missing or empty. */
function loadToken(file: string): string {
  let token = "";
  try {
    token = readFileSync(file, "utf8").trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (token === "") {
    token = randomBytes(32).toString("hex");
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  if (token.length < 16) throw new Error(`the token in ${file} is shorter than 16 characters`);
  return token;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

/** Bearer check in constant time (over digests, so the length of the guess tells nothing either). */
export function bearerGuard(token: string) {
  const want = digest(token);
  return async (c: { req: { header(k: string): string | undefined } }, next: () => Promise<void>) => {
    const m = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "");
    if (!m || !timingSafeEqual(digest(m[1]), want)) {
      throw new BangerError("UNAUTHORIZED", "the remote API needs Authorization: Bearer <token>", {
        hint: "the token is in remote.token_file (default <state_dir>/remote-token) on the node",
      });
    }
    await next();
  };
}

/**
 * The remote API listener (`remote.listen`): the same /v1 routes as the socket, behind a bearer
 * token, for callers on other hosts (a fleet controller) or in other namespaces. Off by default.
 * A listener that cannot start leaves the daemon serving its socket; doctor says why.
 */
export async function startRemote(cfg: LoadedConfig, log: Logger, routes: () => Hono<ApiEnv>): Promise<RemoteHandle> {
  const settings = remoteSettings(cfg);
  const verdict = remoteBindVerdict(settings);
  let server: Server | undefined;
  let error: string | undefined;
  let url: string | undefined;
  if (verdict.bind) {
    try {
      const token = loadToken(settings.tokenFile);
      const app = new Hono<ApiEnv>();
      app.onError((err, c) => errorResponse(c, err));
      app.use("*", bearerGuard(token));
      app.route("/v1", routes());
      server = createServer(honoListener(app.fetch));
      // A create may wait minutes for a guest; a caller that stalls mid-request is cut off.
      server.requestTimeout = 0;
      server.headersTimeout = 10_000;
      const s = server;
      const port = await new Promise<number>((resolve, reject) => {
        s.once("error", reject);
        s.listen(verdict.bind!.port, verdict.bind!.host, () => {
          s.off("error", reject);
          resolve((s.address() as { port: number }).port);
        });
      });
      url = `http://${verdict.bind.host.includes(":") ? `[${verdict.bind.host}]` : verdict.bind.host}:${port}`;
      log.info({ stage: "remote", listen: settings.listen, loopback: verdict.bind.loopback }, "remote API listening");
    } catch (e) {
      error = (e as Error).message;
      server = undefined;
      log.error({ stage: "remote", code: "REMOTE_LISTEN", err: error }, "remote API not serving");
    }
  } else if (verdict.refused) {
    log.error({ stage: "remote", err: verdict.refused }, "remote API not serving");
  }
  const check = (): Check => {
    if (verdict.off) return { name: "remote", status: "PASS", detail: `off (${verdict.off})` };
    if (verdict.refused) return { name: "remote", status: "FAIL", detail: `not serving: ${verdict.refused}`, fix: verdict.fix };
    if (error)
      return {
        name: "remote",
        status: "FAIL",
        detail: `not serving on ${settings.listen}: ${error}`,
        fix: "free the port or change remote.listen, then restart bangerd",
      };
    if (!verdict.bind!.loopback) {
      return {
        name: "remote",
        status: "WARN",
        detail: `serving ${url} beyond loopback (remote.allow_remote = true): plain HTTP, the bearer token in ${settings.tokenFile} manages every VM`,
        fix: "put a TLS proxy in front or keep it on a private network; firewall the port to the callers you expect",
      };
    }
    return { name: "remote", status: "PASS", detail: `serving ${url} (loopback), bearer token in ${settings.tokenFile}` };
  };
  return {
    check,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        if (!server) return resolve();
        server.close(() => resolve());
        // Event streams never end on their own.
        server.closeAllConnections();
      }),
  };
}
