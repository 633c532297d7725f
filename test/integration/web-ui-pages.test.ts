import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { chromiumSkipReason, webConfig, type Browser } from "../helpers/browser.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { BASE, webWorld, type WebWorld } from "../helpers/web-world.js";

const skip = netnsSkipReason() ?? built() ?? chromiumSkipReason();

/** The Images and Host pages and the guest service proxy, in Chromium against a real bangerd with the fake Firecracker. */
describe.skipIf(skip)(`web UI pages in Chromium, fake Firecracker${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let w: WebWorld;
  let d: TestDaemon;
  let b: Browser;
  let art: string;
  const curl = (args: string[]) => w.curl(args);

  beforeAll(async () => {
    w = await webWorld("webpages");
    ({ d, b, art } = w);
    await w.login();
  });
  afterAll(async () => {
    await w?.destroy();
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
