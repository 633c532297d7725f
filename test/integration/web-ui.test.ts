import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { chromiumSkipReason, launchIn, screenshots, webConfig, type Browser } from "../helpers/browser.js";
import { createNetns, netnsSkipReason } from "../helpers/netns.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";

const skip = netnsSkipReason() ?? built() ?? chromiumSkipReason();
const BASE = "http://127.0.0.1:7780";

interface VmJson {
  name: string;
  state: string;
}

/**
 * The web UI in real Chromium against a real bangerd (real SQLite, TAPs, nft, disks) whose
 * only fake is Firecracker. The browser runs in the daemon's namespace.
 */
describe.skipIf(skip)(`web UI in Chromium, fake Firecracker${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let b: Browser;
  let art: string;
  const link = async () => {
    const r = await d.cli(["--json", "web"]);
    expect(r.code, r.stderr).toBe(0);
    return r.json<{ url: string }>().url;
  };
  const cliVms = async () => (await d.cli(["--json", "vm", "ls"])).json<{ vms: VmJson[] }>().vms;
  /** curl inside the namespace: a client without the browser's cookies. */
  const curl = (args: string[]) => d.ns.exec("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", ...args]);

  beforeAll(async () => {
    const ns = await createNetns("webui");
    const dir = mkdtempSync(join(tmpdir(), "banger-web-"));
    d = await startTestDaemon({
      ns,
      dir,
      configText: webConfig(dir, { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 2 }),
      env: FAKE_FC_ENV,
    });
    art = mkdtempSync(join(tmpdir(), "banger-web-art-"));
    expect((await d.cli(fakeImageArgs(art, "fake-1"))).code).toBe(0);
    expect((await d.cli(["image", "promote", "fake-1", "--as", "fake"])).code).toBe(0);
    b = await launchIn(ns);
  });
  afterAll(async () => {
    await b?.close();
    const ns = d?.ns;
    await d?.destroy();
    await ns?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it("keeps its token 0600 in the state dir; doctor reports the listener", async () => {
    expect(statSync(join(d.stateDir, "web-token")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(d.stateDir, "web-token"), "utf8").trim()).toMatch(/^[0-9a-f]{64}$/);
    const doc = (await d.cli(["--json", "doctor"])).json<{ checks: { name: string; status: string; detail: string }[] }>();
    expect(doc.checks.find((c) => c.name === "web")).toMatchObject({ status: "PASS", detail: expect.stringContaining("serving http://127.0.0.1:7780") });
  });

  it("answers 401 without a session, everywhere but the login route", async () => {
    for (const path of ["/", "/v1/vms", "/v1/events", "/assets/none.js", "/v1/doctor"]) {
      expect((await curl([`${BASE}${path}`])).stdout, path).toBe("401");
    }
    expect((await curl(["-X", "POST", "-H", "content-type: application/json", "-d", '{"image":"fake"}', `${BASE}/v1/vms`])).stdout).toBe("401");
    // A rebinding page's Host is refused before anything else.
    expect((await curl(["-H", "Host: evil.example:7780", `${BASE}/v1/vms`])).stdout).toBe("421");
  });

  it("logs in with a one-time link that works once, and refuses a POST without the CSRF token", async () => {
    const url = await link();
    await b.page.goto(url);
    await b.page.getByRole("heading", { name: "VMs" }).waitFor();
    const cookies = await b.context.cookies();
    const session = cookies.find((c) => c.name === "banger_session");
    expect(session).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    // The same link a second time (a fresh client) gets nothing.
    expect((await curl([url])).stdout).toBe("401");
    const jar = `Cookie: banger_session=${session!.value}`;
    expect((await curl(["-H", jar, `${BASE}/v1/vms`])).stdout).toBe("200");
    const post = ["-X", "POST", "-H", jar, "-H", "content-type: application/json", "-d", '{"image":"fake","noWait":true}', `${BASE}/v1/vms`];
    expect((await curl(post)).stdout).toBe("403");
    expect((await curl(["-H", "X-CSRF-Token: wrong", ...post])).stdout).toBe("403");
    expect(await cliVms()).toEqual([]);
    // Same page, same session: the page's own fetch with its token is accepted.
    const status = await b.page.evaluate(async () => {
      const { csrf } = (await (await fetch("/v1/web/session")).json()) as { csrf: string };
      return (await fetch("/v1/doctor", { method: "GET", headers: { "X-CSRF-Token": csrf } })).status;
    });
    expect(status).toBe(200);
  });

  it("serves hashed assets as immutable, under a strict CSP", async () => {
    const res = await b.page.goto(`${BASE}/`);
    const csp = res!.headers()["content-security-policy"];
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    const html = await res!.text();
    const js = /\/assets\/(app-[A-Z0-9]+\.js)/.exec(html)![1];
    expect(html).not.toMatch(/<script>|<style|style="/);
    // The request API runs outside the namespace; the page itself fetches.
    const asset = await b.page.goto(`${BASE}/assets/${js}`);
    expect(asset!.headers()["cache-control"]).toBe("public, max-age=31536000, immutable");
  });
});
