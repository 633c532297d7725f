import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BANGER, REPO, built, type TestDaemon } from "../helpers/daemon.js";
import { chromiumSkipReason, screenshots, type Browser } from "../helpers/browser.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { BASE, webWorld, type WebWorld } from "../helpers/web-world.js";

const skip = netnsSkipReason() ?? built() ?? chromiumSkipReason();
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * The web UI in real Chromium against a real bangerd (real SQLite, TAPs, nft, disks) whose
 * only fake is Firecracker. The browser runs in the daemon's namespace.
 */
describe.skipIf(skip)(`web UI in Chromium, fake Firecracker${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let w: WebWorld;
  let d: TestDaemon;
  let b: Browser;
  const link = () => w.link();
  const cliVms = () => w.cliVms();
  const curl = (args: string[]) => w.curl(args);

  beforeAll(async () => {
    w = await webWorld("webui");
    ({ d, b } = w);
  });
  afterAll(async () => {
    await w?.destroy();
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

  it("creates a VM through the form: stages appear live, it runs, it is deleted from the UI, and the CLI agrees at each step", async () => {
    const p = b.page;
    await p.goto(`${BASE}/#/create`);
    await expectImageChoices();
    await p.getByLabel("Image").fill("fake");
    await p.getByLabel("Name", { exact: true }).fill("web-one");
    await p.getByLabel("Return once booted").check();
    await p.getByRole("button", { name: "Create" }).click();
    // The stage rows arrive over the event stream while the request is still open.
    await p.locator('table.stages tr[data-stage="lease-ip"]').waitFor();
    await p.getByRole("heading", { name: "Created web-one" }).waitFor();
    for (const stage of ["lease-ip", "tap", "rootfs", "work-disk", "inject", "spawn-vmm", "configure", "start"]) {
      await expect.poll(() => p.locator(`table.stages tr[data-stage="${stage}"][data-outcome="ok"]`).count()).toBe(1);
    }
    expect((await cliVms()).map((v) => [v.name, v.state])).toEqual([["web-one", "running"]]);
    await screenshots(p, "create-done");

    await p.goto(`${BASE}/#/vms`);
    const row = p.locator('tr[data-vm="web-one"]');
    await expect.poll(() => row.locator(".badge").textContent()).toBe("running");
    await expect.poll(() => row.locator("code").textContent()).toBe("banger vm ssh web-one");
    await screenshots(p, "vms");

    await p.goto(`${BASE}/#/vms/web-one`);
    await p.locator("table.stages caption", { hasText: "create at" }).waitFor();
    await screenshots(p, "vm-detail");

    await p.goto(`${BASE}/#/vms`);
    await row.getByRole("button", { name: "Delete web-one" }).click();
    const dialog = p.getByRole("dialog", { name: "Delete web-one?" });
    // Cancel keeps it.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect((await cliVms()).map((v) => v.name)).toEqual(["web-one"]);
    await row.getByRole("button", { name: "Delete web-one" }).click();
    await dialog.getByRole("button", { name: "Delete" }).click();
    await row.waitFor({ state: "detached" });
    expect(await cliVms()).toEqual([]);
  });

  it("shows stages while a create runs, then a failure's message, hint, stage and console tail; nothing is left", async () => {
    const p = b.page;
    await p.goto(`${BASE}/#/create`);
    await expectImageChoices();
    await p.getByLabel("Image").fill("fake");
    await p.getByLabel("Name", { exact: true }).fill("no-ssh");
    await p.getByRole("button", { name: "Create" }).click();
    // `start` is done while the request still waits in wait-ssh: the rows come from the event stream.
    await p.locator('table.stages tr[data-stage="start"][data-outcome="ok"]').waitFor();
    expect(await p.locator(".progress h2").textContent()).toBe("Creating…");
    expect((await cliVms()).map((v) => [v.name, v.state])).toEqual([["no-ssh", "creating"]]);
    const err = p.locator(".form-error");
    await err.waitFor();
    await expect.poll(() => err.textContent()).toContain("create of VM no-ssh failed at stage wait-ssh");
    expect(await err.textContent()).toContain("Failed stage: wait-ssh");
    expect(await err.textContent()).toContain("Hint: ");
    expect(await err.locator("pre.console-tail").textContent()).toContain("[fake firecracker]");
    await p.locator('table.stages tr[data-stage="wait-ssh"][data-outcome="failed"]').waitFor();
    await screenshots(p, "create-failed");
    expect(await cliVms()).toEqual([]);
  });

  async function expectImageChoices(): Promise<void> {
    // Aliases first, then image names.
    const values = () => b.page.locator("#image-choices option").evaluateAll((o) => o.map((x) => (x as HTMLOptionElement).value));
    await expect.poll(values).toContain("fake-1");
    const all = await values();
    expect(all.slice(0, all.indexOf("fake-1"))).toContain("fake");
  }

  it("shows the API's error next to the field for bad input, and creates nothing", async () => {
    const p = b.page;
    await p.goto(`${BASE}/#/create`);
    await expectImageChoices();
    const name = p.getByLabel("Name", { exact: true });
    const image = p.getByLabel("Image");
    const memory = p.getByLabel("Memory (MiB)");
    const errorOf = (label: string) => p.locator(`#${label}-error`);
    const submit = () => p.getByRole("button", { name: "Create" }).click();
    const nameId = await name.getAttribute("id");
    const imageId = await image.getAttribute("id");
    const memId = await memory.getAttribute("id");
    await p.getByLabel("Return once booted").check();

    // As typed: the API's own rules, before any request.
    await name.fill("Bad_Name");
    await expect.poll(() => errorOf(nameId!).textContent()).toBe('VM name "Bad_Name" contains uppercase letters');
    await submit();
    await expect.poll(() => errorOf(nameId!).textContent()).toContain('VM name "Bad_Name" contains uppercase letters');
    await expect.poll(() => errorOf(nameId!).textContent()).toContain("Hint: use lowercase letters");
    await screenshots(p, "create-error");

    // A taken name.
    expect((await d.cli(["vm", "create", "--image", "fake", "--name", "taken", "--no-wait"])).code).toBe(0);
    await name.fill("taken");
    await submit();
    await expect.poll(() => errorOf(nameId!).textContent()).toContain("a VM named taken already exists");

    // Memory 0.
    await name.fill("fresh");
    await memory.fill("0");
    await submit();
    await expect.poll(() => errorOf(memId!).textContent()).toContain("memoryMib");
    expect(await memory.getAttribute("aria-invalid")).toBe("true");

    // A missing image.
    await memory.fill("");
    await image.fill("no-such-image");
    await submit();
    await expect.poll(() => errorOf(imageId!).textContent()).toContain("no-such-image");

    expect((await cliVms()).map((v) => v.name)).toEqual(["taken"]);
    expect((await d.cli(["vm", "rm", "--force", "taken"])).code).toBe(0);
  });

  it("shows a VM created from the CLI without a reload, stage by stage", async () => {
    const p = b.page;
    await p.goto(`${BASE}/#/vms`);
    await p.getByRole("heading", { name: "VMs" }).waitFor();
    const marker = await p.evaluate(() => ((window as unknown as { __mark: number }).__mark = Math.random()));
    // `banger events` follows the same stream from the CLI.
    const follow = spawn("ip", ["netns", "exec", d.ns.name, BANGER, "--json", "events"], {
      env: { ...process.env, BANGER_CONFIG: d.configPath, XDG_DATA_HOME: join(d.dir, "data") },
    });
    let followed = "";
    follow.stdout.on("data", (b: Buffer) => (followed += b.toString()));
    await expect.poll(() => followed).toContain('"type":"hello"');
    const cli = d.cli(["vm", "create", "--image", "fake", "--name", "from-cli", "--no-wait"]);
    await p.locator('tr[data-vm="from-cli"]').waitFor();
    expect((await cli).code).toBe(0);
    await expect.poll(() => followed).toMatch(/"type":"stage".*"vmName":"from-cli".*"stage":"spawn-vmm"/);
    await expect.poll(() => followed).toMatch(/"type":"vm".*"name":"from-cli".*"state":"running"/);
    follow.kill();
    await expect.poll(() => p.locator('tr[data-vm="from-cli"] .badge').textContent()).toBe("running");
    // The same document: no navigation happened.
    expect(await p.evaluate(() => (window as unknown as { __mark: number }).__mark)).toBe(marker);

    // An open detail page follows the next operation stage by stage.
    await p.goto(`${BASE}/#/vms/from-cli`);
    await p.locator("table.stages caption", { hasText: "create at" }).waitFor();
    expect((await d.cli(["vm", "stop", "from-cli"], { timeoutMs: 120_000 })).code).toBe(0);
    await p.locator("table.stages caption", { hasText: "stop at" }).waitFor();
    await expect.poll(() => p.locator("h1 .badge").textContent()).toBe("stopped");
    expect((await d.cli(["vm", "rm", "from-cli"])).code).toBe(0);
  });

  it("has no serious or critical axe violations on the main pages, light and dark; screenshots of each", async () => {
    const p = b.page;
    expect((await d.cli(["vm", "create", "--image", "fake", "--name", "axe-vm", "--no-wait"])).code).toBe(0);
    for (const [route, name, ready] of [
      ["#/vms", "vms", 'tr[data-vm="axe-vm"]'],
      ["#/create", "create", "#image-choices option"],
      ["#/vms/axe-vm", "vm-detail", "table.stages"],
      ["#/images", "images", 'tr[data-image="fake-1"]'],
      ["#/host", "host", "table.doctor"],
    ] as const) {
      await p.goto(`${BASE}/${route}`);
      await p.locator(ready).first().waitFor({ state: "attached" });
      for (const scheme of ["light", "dark"] as const) {
        await p.emulateMedia({ colorScheme: scheme });
        // Evaluated over the debugging protocol, which the page's CSP does not govern.
        await p.evaluate(axeSource);
        const found = await p.evaluate(async () => {
          const r = await (
            window as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }
          ).axe.run();
          return r.violations.map((v) => ({ id: v.id, impact: v.impact, at: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
        });
        expect(
          found.filter((v) => v.impact === "serious" || v.impact === "critical"),
          `${route} ${scheme}`,
        ).toEqual([]);
      }
      await screenshots(p, name);
      await p.setViewportSize({ width: 420, height: 800 });
      await p.screenshot({ path: join(REPO, "build/ui", `${name}-narrow.png`), fullPage: true });
      await p.setViewportSize({ width: 1280, height: 800 });
    }
    expect((await d.cli(["vm", "rm", "--force", "axe-vm"])).code).toBe(0);
  });
});
