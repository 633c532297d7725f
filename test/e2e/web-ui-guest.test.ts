import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { chromiumSkipReason, launchIn, screenshots, webConfig, type Browser } from "../helpers/browser.js";
import { createNetns } from "../helpers/netns.js";

const skip = built() ?? guestSkipReason() ?? chromiumSkipReason();
const BASE = "http://127.0.0.1:7780";

describe.skipIf(skip)(`e2e: a real QEMU guest created from the web UI${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let b: Browser;

  beforeAll(async () => {
    const ns = await createNetns("webguest");
    const dir = mkdtempSync(join(tmpdir(), "banger-webguest-"));
    d = await startTestDaemon({ ns, dir, configText: webConfig(dir, { memory_mib: 1024, work_disk_gib: 4 }) });
    // SSH only: opencode's cold start under TCG costs minutes and is not what this test is about.
    const reg = await d.cli(registerArgs(builtDebianImage()!, "debian-web-1", { services: false }), { timeoutMs: 300_000 });
    expect(reg.code, reg.stderr).toBe(0);
    expect((await d.cli(["image", "promote", "debian-web-1", "--as", "debian"])).code).toBe(0);
    b = await launchIn(ns);
    const link = (await d.cli(["--json", "web"])).json<{ url: string }>().url;
    await b.page.goto(link);
  });
  afterAll(async () => {
    await b?.close();
    const ns = d?.ns;
    await d?.destroy();
    await ns?.destroy();
  });

  it("creates a guest through the form, shows its kernel banner on the live console, and deletes it", async () => {
    const p = b.page;
    p.setDefaultTimeout(600_000);
    await p.goto(`${BASE}/#/create`);
    await p.locator("#image-choices option").first().waitFor({ state: "attached" });
    await p.getByLabel("Image").fill("debian");
    await p.getByLabel("Name", { exact: true }).fill("web-guest");
    await p.getByRole("button", { name: "Create" }).click();
    await p.locator('table.stages tr[data-stage="spawn-vmm"]').waitFor();
    // A hash route keeps the document (and the create request) alive.
    await p.goto(`${BASE}/#/vms/web-guest`);
    await p.locator("pre.console", { hasText: "Linux version" }).waitFor();
    await expect.poll(() => p.locator("h1 .badge").textContent(), { timeout: 600_000, interval: 1000 }).toBe("running");
    const ls = (await d.cli(["--json", "vm", "ls"])).json<{ vms: { name: string; state: string }[] }>().vms;
    expect(ls.map((v) => [v.name, v.state])).toEqual([["web-guest", "running"]]);
    await p.locator("table.stages tr[data-stage='wait-ssh'][data-outcome='ok']").first().waitFor();
    await screenshots(p, "vm-detail-guest");

    await p.getByRole("button", { name: "Delete web-guest" }).click();
    await p.getByRole("dialog", { name: "Delete web-guest?" }).getByRole("button", { name: "Delete" }).click();
    await p.getByText("This VM was deleted.").waitFor();
    expect((await d.cli(["--json", "vm", "ls"])).json<{ vms: unknown[] }>().vms).toEqual([]);
  });
});
