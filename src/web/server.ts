import { createServer, type Server } from "node:http";
import { Hono, type Context } from "hono";
import type { ApiEnv } from "../api/env.js";
import type { Logger } from "pino";
import { BangerError } from "../domain/errors.js";
import type { WebBind } from "../domain/web-bind.js";
import { errorResponse } from "../api/errors.js";
import { honoListener } from "../api/node-listener.js";
import { Assets } from "./assets.js";
import { SESSION_COOKIE, WebAuth, readCookie } from "./auth.js";
import { GuestProxies, type GuestTarget } from "./guest-proxy.js";

/**
 * No inline script or style anywhere, nothing from another origin, no framing. The UI's own
 * script and style files are the only code a page may run.
 */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export interface WebServer {
  url: string;
  loginLink(): { url: string; expiresAt: string };
  close(): Promise<void>;
}

export interface WebOptions {
  bind: WebBind;
  tokenFile: string;
  assetsDir: string;
  /** The browser flavour of the /v1 routes (src/api/routes.ts). */
  api: Hono<ApiEnv>;
  log: Logger;
  /** A running VM's service to proxy (throws the API's errors); absent, no proxies are offered. */
  guestTarget?: (vm: string, service: string) => GuestTarget;
  /** Called with a callback for VM ids that left `running`; their proxies close. */
  onVmStopped?: (close: (vmId: string) => void) => void;
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function hostPart(bind: WebBind): string {
  return bind.host.includes(":") ? `[${bind.host}]` : bind.host;
}

/** Loopback answers only to loopback names: a DNS-rebound name pointing at 127.0.0.1 gets nothing. */
function hostAllowed(host: string | undefined, bind: WebBind): boolean {
  if (!bind.loopback) return true;
  const names = [hostPart(bind), "localhost", "127.0.0.1", "[::1]"].map((h) => `${h}:${bind.port}`);
  return host !== undefined && names.includes(host.toLowerCase());
}

function page401(c: Context, why: string) {
  c.header("Content-Type", "text/plain; charset=utf-8");
  return c.body(`${why}\n\nRun \`banger web\` on the host and open the link it prints.\n`, 401);
}

type WebEnv = { Variables: { session: string } };

export function webApp(o: Omit<WebOptions, "log">, auth: WebAuth, assets: Assets, proxies?: GuestProxies): Hono<WebEnv> {
  const app = new Hono<WebEnv>();
  app.onError((err, c) => errorResponse(c, err));
  app.use(async (c, next) => {
    c.header("Content-Security-Policy", CSP);
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Frame-Options", "DENY");
    c.header("Cross-Origin-Opener-Policy", "same-origin");
    c.header("Cross-Origin-Resource-Policy", "same-origin");
    if (!hostAllowed(c.req.header("host"), o.bind)) {
      return c.text("unexpected Host header\n", 421);
    }
    await next();
  });

  app.get("/login", (c) => {
    c.header("Cache-Control", "no-store");
    const code = c.req.query("code");
    if (!code || !auth.redeem(code)) return page401(c, "This login link was already used or has expired.");
    const s = auth.newSession();
    c.header("Set-Cookie", `${SESSION_COOKIE}=${s.cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${s.maxAgeS}`);
    // The code leaves the address bar (and the history) at once.
    return c.redirect("/", 303);
  });

  app.use(async (c, next) => {
    const session = auth.session(readCookie(c.req.header("cookie"), SESSION_COOKIE));
    if (!session) {
      if (c.req.path.startsWith("/v1/")) {
        return errorResponse(c, new BangerError("UNAUTHORIZED", "no valid session", { hint: "run `banger web` and open the link it prints" }));
      }
      return page401(c, "Not logged in (or the session expired).");
    }
    if (MUTATING.has(c.req.method) && !auth.csrfValid(session, c.req.header("x-csrf-token"))) {
      return errorResponse(
        c,
        new BangerError("FORBIDDEN", "missing or wrong CSRF token", { hint: "send the token from GET /v1/web/session in the X-CSRF-Token header" }),
      );
    }
    c.set("session", session);
    await next();
  });

  app.get("/v1/web/session", (c) => {
    c.header("Cache-Control", "no-store");
    return c.json({ csrf: auth.csrf(c.get("session")) });
  });
  app.post("/v1/vms/:name/services/:service/proxy", async (c) => {
    if (!proxies || !o.guestTarget) throw new BangerError("NOT_FOUND", "guest service proxies are not available here");
    const target = o.guestTarget(c.req.param("name"), c.req.param("service"));
    const hostname = (c.req.header("host") ?? o.bind.host).replace(/:\d+$/, "");
    return c.json({ url: await proxies.ensure(target, hostname) });
  });
  app.use("/v1/*", async (c, next) => {
    c.header("Cache-Control", "no-store");
    await next();
  });
  app.route("/v1", o.api as unknown as Hono<WebEnv>);

  app.get("/assets/:file", (c) => {
    const a = assets.get(c.req.param("file"));
    if (!a) return c.text("not found\n", 404);
    // Names carry a content hash: a changed file has a new name.
    c.header("Cache-Control", "public, max-age=31536000, immutable");
    c.header("Content-Type", a.type);
    return c.body(new Uint8Array(a.body));
  });
  app.get("*", (c) => {
    c.header("Cache-Control", "no-store");
    return c.html(assets.index);
  });
  return app;
}

export async function startWeb(o: WebOptions): Promise<WebServer> {
  const assets = new Assets(o.assetsDir);
  const auth = WebAuth.fromStateDir(o.tokenFile);
  const proxies = new GuestProxies({ host: o.bind.host, auth, log: o.log });
  o.onVmStopped?.((vmId) => proxies.closeVm(vmId));
  const app = webApp(o, auth, assets, proxies);
  const server: Server = createServer(honoListener(app.fetch));
  // Long creates and the event stream stay open far past the default request timeout.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.bind.port, o.bind.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const url = `http://${o.bind.loopback && o.bind.host === "localhost" ? "localhost" : hostPart(o.bind)}:${o.bind.port}`;
  o.log.info({ url }, "web UI listening");
  return {
    url,
    loginLink() {
      const { code, expiresAt } = auth.issueCode();
      return { url: `${url}/login?code=${code}`, expiresAt: new Date(expiresAt).toISOString() };
    },
    close: () =>
      new Promise<void>((resolve) => {
        proxies.closeAll();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
