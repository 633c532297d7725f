import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { BANGER, REPO, built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { chromiumSkipReason, launchIn, screenshots, webConfig, type Browser } from "../helpers/browser.js";
import { createNetns, netnsSkipReason } from "../helpers/netns.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";

const skip = netnsSkipReason() ?? built() ?? chromiumSkipReason();
const BASE = "http://127.0.0.1:7780";
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

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
      // The fake boots no guest: a create that waits for SSH fails after 5 s, at wait-ssh.
      configText: webConfig(dir, { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 2, ssh_timeout_s: 5 }),
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

  it("registers, promotes, warms and deletes images from the Images page; a delete in use is refused with the reason", async () => {
    const p = b.page;
    await p.goto(`${BASE}/#/images`);
    await p.locator('tr[data-image="fake-1"]').waitFor();
    await p.getByText("Register an image").click();
    const form = p.locator("form.register");
    await form.getByLabel("Name").fill("web-img-1");
    await form.getByLabel("Kernel").fill("relative/vmlinux");
    await form.getByLabel("Root file system (ext4)").fill(join(art, "rootfs.ext4"));
    await form.getByRole("button", { name: "Register" }).click();
    // The API's schema error, beside the field it names.
    await expect.poll(() => form.locator("[id$='-error']:not([hidden])").first().textContent()).toContain("must be an absolute path");
    await form.getByLabel("Kernel").fill(join(art, "vmlinux"));
    await form.getByRole("button", { name: "Register" }).click();
    const row = p.locator('tr[data-image="web-img-1"]');
    await row.waitFor();
    expect((await d.cli(["--json", "image", "ls"])).json<{ images: { name: string }[] }>().images.map((i) => i.name)).toContain("web-img-1");

    await row.getByLabel("New alias for web-img-1").fill("webby");
    await row.getByRole("button", { name: "Promote" }).click();
    await expect.poll(() => row.locator("td").nth(0).textContent()).toBe("webby");
    await row.getByRole("button", { name: "Fill the warm disk pool of web-img-1" }).click();
    await expect.poll(() => p.locator(".status").textContent()).toBe("warm pool of web-img-1: done");

    // In use by an alias: refused, and the reason is shown.
    await row.getByRole("button", { name: "Delete image web-img-1" }).click();
    await p.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
    await expect.poll(() => p.locator(".status").textContent()).toMatch(/delete web-img-1 failed: .*webby/);
    await row.waitFor();
    // Moved off, it goes.
    expect((await d.cli(["image", "promote", "fake-1", "--as", "webby"])).code).toBe(0);
    await row.getByRole("button", { name: "Delete image web-img-1" }).click();
    await p.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
    await row.waitFor({ state: "detached" });
    expect((await d.cli(["--json", "image", "ls"])).json<{ images: { name: string }[] }>().images.map((i) => i.name)).toEqual(["fake-1"]);
  });

  it("shows doctor, pools and the config in effect on the Host page", async () => {
    const p = b.page;
    await p.goto(`${BASE}/#/host`);
    const web = p.locator("table.doctor tr", { has: p.getByRole("rowheader", { name: "web", exact: true }) });
    await expect.poll(() => web.textContent()).toContain("serving http://127.0.0.1:7780");
    await expect.poll(() => p.locator("dl.kv").textContent()).toMatch(/TAP pool\d+ idle of 2/);
    await expect
      .poll(() => p.locator("section", { hasText: "Config in effect" }).locator("tr", { hasText: "web.allow_remote" }).textContent())
      .toContain("false");
  });

  it("opens a guest's HTTP service through a proxy on its own port that never passes the banger session on", async () => {
    const reg = await d.cli([
      "image",
      "register",
      "--name",
      "svc-1",
      "--kernel",
      join(art, "vmlinux"),
      "--rootfs",
      join(art, "rootfs.ext4"),
      "--service",
      "web:8080",
    ]);
    expect(reg.code, reg.stderr).toBe(0);
    const made = await d.cli(["--json", "vm", "create", "--image", "svc-1", "--name", "svc-vm", "--no-wait"]);
    expect(made.code, made.stderr).toBe(0);
    const ip = made.json<{ vm: { ip: string } }>().vm.ip;
    // The fake runs no guest: a stand-in service on the VM's address, inside the namespace. It
    // echoes the headers it got and tries to set cookies.
    await d.ns.exec("ip", ["addr", "add", `${ip}/32`, "dev", "lo"]);
    const guest = spawn("ip", [
      "netns",
      "exec",
      d.ns.name,
      process.execPath,
      "-e",
      `require("http").createServer((q, r) => { r.writeHead(200, { "content-type": "application/json", "set-cookie": ["banger_session=stolen; Path=/", "guest=1; Path=/"] }); r.end(JSON.stringify(q.headers)); }).listen(8080, "${ip}")`,
    ]);
    try {
      await expect
        .poll(() =>
          d.ns.exec("curl", ["-s", "-o", "/dev/null", `http://${ip}:8080/`]).then(
            () => "up",
            (e: Error) => e.message,
          ),
        )
        .toBe("up");
      const p = b.page;
      const before = (await b.context.cookies()).find((c) => c.name === "banger_session")!.value;
      await p.goto(`${BASE}/#/vms/svc-vm`);
      const popupP = b.context.waitForEvent("page");
      await p.getByRole("button", { name: "Open web of svc-vm" }).click();
      const popup = await popupP;
      await popup.waitForLoadState();
      const url = new URL(popup.url());
      expect(url.hostname).toBe("127.0.0.1");
      expect(url.port).not.toBe("7780");
      const seen = JSON.parse((await popup.locator("body").textContent())!) as Record<string, string>;
      expect(seen.host).toBe(`${url.host}`);
      expect(seen.cookie).toBeUndefined();
      expect(seen["x-csrf-token"]).toBeUndefined();
      await popup.close();
      const cookies = await b.context.cookies();
      expect(cookies.find((c) => c.name === "banger_session")!.value).toBe(before);
      expect(cookies.find((c) => c.name === "guest")).toBeUndefined();
      // Without the session the proxy answers nothing of the guest's.
      expect((await curl([url.href])).stdout).toBe("401");
      // The proxy lives only while the VM runs.
      expect((await d.cli(["vm", "stop", "svc-vm"], { timeoutMs: 120_000 })).code).toBe(0);
      await expect
        .poll(() =>
          d.ns.exec("curl", ["-s", "-o", "/dev/null", url.href]).then(
            () => "open",
            (e: Error) => e.message,
          ),
        )
        .toMatch(/exited 7/);
      const again = await p.evaluate(async () => {
        const { csrf } = (await (await fetch("/v1/web/session")).json()) as { csrf: string };
        const r = await fetch("/v1/vms/svc-vm/services/web/proxy", { method: "POST", headers: { "X-CSRF-Token": csrf } });
        return { status: r.status, body: (await r.json()) as { error: { code: string } } };
      });
      expect(again).toMatchObject({ status: 409, body: { error: { code: "VM_STATE" } } });
    } finally {
      guest.kill();
      await d.cli(["vm", "rm", "--force", "svc-vm"]);
      await d.ns.exec("ip", ["addr", "del", `${ip}/32`, "dev", "lo"]).catch(() => undefined);
      await d.cli(["image", "rm", "svc-1"]);
    }
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

describe.skipIf(skip)(`web listener refuses a non-loopback address without allow_remote${skip ? ` (skipped: ${skip})` : ""}`, () => {
  it("keeps serving the socket, and doctor says why the UI is off", async () => {
    const dir = mkdtempSync(join(tmpdir(), "banger-web-remote-"));
    const d = await startTestDaemon({ dir, configText: webConfig(dir, { tap_pool_size: 0 }, "0.0.0.0:7780") });
    try {
      const doc = (await d.cli(["--json", "doctor"])).json<{ checks: { name: string; status: string; detail: string; fix?: string }[] }>();
      const web = doc.checks.find((c) => c.name === "web")!;
      expect(web.status).toBe("FAIL");
      expect(web.detail).toContain("0.0.0.0:7780 is not a loopback address");
      expect(web.fix).toContain("web.allow_remote = true");
      // Nothing listens: curl exits 7 (could not connect).
      await expect(d.ns.exec("curl", ["-s", "-o", "/dev/null", "http://127.0.0.1:7780/"])).rejects.toThrow(/exited 7/);
      const r = await d.cli(["web"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("the web UI is not serving");
    } finally {
      const ns = d.ns;
      await d.destroy();
      await ns.destroy();
    }
  });
});
