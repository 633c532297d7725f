import type { ApiEnv } from "../../src/api/env.js";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { webBindVerdict } from "../../src/domain/web-bind.js";
import { WebAuth, readCookie } from "../../src/web/auth.js";
import { webApp } from "../../src/web/server.js";
import type { Assets } from "../../src/web/assets.js";

const dir = mkdtempSync(join(tmpdir(), "banger-webauth-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("web listener bind rules", () => {
  const w = (listen: string, extra: Partial<{ enabled: boolean; allowRemote: boolean }> = {}) =>
    webBindVerdict({ enabled: true, allowRemote: false, listen, ...extra });
  it("serves loopback, refuses anything else unless allow_remote, and says why", () => {
    expect(w("127.0.0.1:7780").bind).toEqual({ host: "127.0.0.1", port: 7780, loopback: true });
    expect(w("[::1]:7780").bind).toEqual({ host: "::1", port: 7780, loopback: true });
    expect(w("localhost:1").bind?.loopback).toBe(true);
    const refused = w("0.0.0.0:7780");
    expect(refused.bind).toBeUndefined();
    expect(refused.refused).toMatch(/not a loopback address/);
    expect(refused.fix).toMatch(/allow_remote = true/);
    expect(w("192.168.1.5:7780", { allowRemote: true }).bind).toEqual({ host: "192.168.1.5", port: 7780, loopback: false });
    expect(w("127.0.0.1:99999").refused).toMatch(/not host:port/);
    expect(w("", {}).off).toBe('web.listen = ""');
    expect(w("127.0.0.1:7780", { enabled: false }).off).toBe("web.enabled = false");
  });
});

describe("WebAuth", () => {
  it("keeps its key 0600 in the state dir and reuses it", () => {
    const file = join(dir, "web-token");
    writeFileSync(file, "short\n", { mode: 0o644 });
    const a = WebAuth.fromStateDir(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const key = readFileSync(file, "utf8");
    expect(key.trim()).toMatch(/^[0-9a-f]{64}$/);
    const b = WebAuth.fromStateDir(file);
    expect(readFileSync(file, "utf8")).toBe(key);
    // Same key: a session from one daemon run is valid in the next.
    expect(b.session(a.newSession().cookie)).toBeDefined();
  });

  it("redeems a login code once, and not after it expires", () => {
    const auth = new WebAuth(Buffer.alloc(32, 1));
    const { code } = auth.issueCode(1000);
    expect(auth.redeem(code, 2000)).toBe(true);
    expect(auth.redeem(code, 2000)).toBe(false);
    const late = auth.issueCode(1000);
    expect(auth.redeem(late.code, late.expiresAt)).toBe(false);
    expect(auth.redeem("made-up")).toBe(false);
  });

  it("rejects tampered, foreign and expired session cookies; CSRF tokens are per session", () => {
    const auth = new WebAuth(Buffer.alloc(32, 1));
    const other = new WebAuth(Buffer.alloc(32, 2));
    const s = auth.newSession(0);
    const id = auth.session(s.cookie, 1);
    expect(id).toBeDefined();
    const [sid, exp, mac] = s.cookie.split(".");
    expect(auth.session(`${sid}.${Number(exp) + 1}.${mac}`, 1)).toBeUndefined();
    expect(auth.session(`x${sid}.${exp}.${mac}`, 1)).toBeUndefined();
    expect(other.session(s.cookie, 1)).toBeUndefined();
    expect(auth.session(s.cookie, Number(exp))).toBeUndefined();
    expect(auth.session(undefined)).toBeUndefined();
    expect(auth.csrfValid(id!, auth.csrf(id!))).toBe(true);
    expect(auth.csrfValid(id!, auth.csrf("another"))).toBe(false);
    expect(auth.csrfValid(id!, undefined)).toBe(false);
  });

  it("reads one cookie out of a header", () => {
    expect(readCookie("a=1; banger_session=x.y.z; b=2", "banger_session")).toBe("x.y.z");
    expect(readCookie("banger_sessionx=1", "banger_session")).toBeUndefined();
    expect(readCookie(undefined, "banger_session")).toBeUndefined();
  });
});

describe("web app routing (no socket: Hono's request())", () => {
  const auth = new WebAuth(Buffer.alloc(32, 3));
  const api = new Hono<ApiEnv>();
  let posted = 0;
  api.get("/vms", (c) => c.json({ vms: [] }));
  api.post("/vms", (c) => {
    posted++;
    return c.json({ ok: true }, 201);
  });
  const assets = {
    index: "<!doctype html><title>t</title>",
    get: (n: string) => (n === "app-X.js" ? { body: Buffer.from("1"), type: "text/javascript" } : undefined),
  } as unknown as Assets;
  const app = webApp({ bind: { host: "127.0.0.1", port: 7780, loopback: true }, tokenFile: "", assetsDir: "", api }, auth, assets);
  void pino;
  const req = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
    app.request(`http://127.0.0.1:7780${path}`, { ...init, headers: { host: "127.0.0.1:7780", ...init.headers } });

  it("answers 401 to everything but /login without a session, with the CSP on every answer", async () => {
    for (const p of ["/", "/v1/vms", "/assets/app-X.js", "/v1/web/session"]) {
      const r = await req(p);
      expect(r.status, p).toBe(401);
      expect(r.headers.get("content-security-policy")).toContain("default-src 'none'");
    }
    expect((await (await req("/v1/vms")).json()) as unknown).toMatchObject({ error: { code: "UNAUTHORIZED" } });
    expect((await req("/login?code=nope")).status).toBe(401);
  });

  it("logs in once per code, then needs the CSRF token on writes", async () => {
    const { code } = auth.issueCode();
    const login = await req(`/login?code=${code}`);
    expect(login.status).toBe(303);
    const set = login.headers.get("set-cookie")!;
    expect(set).toMatch(/^banger_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    expect((await req(`/login?code=${code}`)).status).toBe(401);
    const cookie = set.split(";")[0];
    expect((await req("/v1/vms", { headers: { cookie } })).status).toBe(200);
    expect((await req("/", { headers: { cookie } })).status).toBe(200);
    const asset = await req("/assets/app-X.js", { headers: { cookie } });
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const post = (headers: Record<string, string>) =>
      req("/v1/vms", { method: "POST", headers: { cookie, "content-type": "application/json", ...headers }, body: "{}" });
    expect((await post({})).status).toBe(403);
    expect((await post({ "x-csrf-token": "forged" })).status).toBe(403);
    expect(posted).toBe(0);
    const { csrf } = (await (await req("/v1/web/session", { headers: { cookie } })).json()) as { csrf: string };
    expect((await post({ "x-csrf-token": csrf })).status).toBe(201);
    expect(posted).toBe(1);
  });

  it("refuses a Host that is not a loopback name (DNS rebinding)", async () => {
    expect((await req("/", { headers: { host: "attacker.example:7780" } })).status).toBe(421);
    expect((await req("/login?code=x", { headers: { host: "localhost:7780" } })).status).toBe(401);
  });
});
