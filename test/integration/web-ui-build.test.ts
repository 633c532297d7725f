import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { built, type TestDaemon } from "../helpers/daemon.js";
import { SHOTS, chromiumSkipReason, screenshots, type Browser } from "../helpers/browser.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { BASE, webWorld, type WebWorld } from "../helpers/web-world.js";

const skip = netnsSkipReason() ?? built() ?? chromiumSkipReason();
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * The `image build` form in Chromium against a real bangerd whose only fake is Firecracker.
 * The fake boots no guest, so no build can succeed here (the builder is never reachable over
 * SSH): these tests cover refused input, a build that fails at wait-ssh, and a cancel from the
 * page. A successful build through the same API is covered by test/e2e/image-build.test.ts.
 */
describe.skipIf(skip)(`web UI image build form, fake Firecracker${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let w: WebWorld;
  let d: TestDaemon;
  let b: Browser;
  let p: Page;

  // A long SSH wait, so a build sits in wait-ssh long enough to be cancelled from the page.
  beforeAll(async () => {
    w = await webWorld("webbuild", { ssh_timeout_s: 120 });
    ({ d, b } = w);
    p = b.page;
    await w.login();
  });
  afterAll(async () => {
    await w?.destroy();
  });

  const images = async () => (await d.cli(["--json", "image", "ls"])).json<{ images: { name: string }[] }>().images.map((i) => i.name);
  const nothingMade = async () => {
    expect(await images()).toEqual(["fake-1"]);
    expect(await w.cliVms()).toEqual([]);
  };
  /** The error slot beside the control with this label. */
  const errorOf = async (label: string) => p.locator(`[id="${await p.getByLabel(label, { exact: true }).getAttribute("id")}-error"]`);
  const openForm = async () => {
    await p.goto(`${BASE}/#/images`);
    await p.getByRole("link", { name: "Build an image" }).click();
    await p.getByRole("heading", { name: "Build an image" }).waitFor();
    await expect.poll(() => p.getByLabel("Base image").inputValue()).toBe("fake");
  };
  // `vm ls` leaves running builders out; `vm show` finds one by name.
  const builderOnPage = async () => {
    await p.locator("section.progress[data-builder]").waitFor();
    return (await p.locator("section.progress").getAttribute("data-builder"))!;
  };
  const builderGone = async (name: string) => {
    const r = await d.cli(["vm", "show", name]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`no VM named ${name}`);
  };
  /** axe-core in the page, light and dark: no serious or critical violations. */
  const noSeriousAxeViolations = async () => {
    for (const scheme of ["light", "dark"] as const) {
      await p.emulateMedia({ colorScheme: scheme });
      await p.evaluate(axeSource);
      const found = await p.evaluate(async () => {
        const r = await (
          window as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }
        ).axe.run();
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, at: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
      });
      expect(
        found.filter((v) => v.impact === "serious" || v.impact === "critical"),
        scheme,
      ).toEqual([]);
    }
    await p.emulateMedia({ colorScheme: "light" });
  };
  const build = () => p.getByRole("button", { name: "Build", exact: true }).click();

  it("shows the API's errors beside the field at fault, checks names and packages as typed, and creates nothing", async () => {
    await openForm();
    await p.getByLabel("Base image").fill("");
    await p.getByLabel("New image name").fill("web-tools-1");
    await p.getByRole("button", { name: "Add command" }).click();
    await p.getByLabel("Command 1").fill("true");
    await build();
    // A missing base: the schema's error, beside the base field.
    await expect.poll(async () => (await errorOf("Base image")).textContent()).toMatch(/from: .*Hint: /);
    await p.getByLabel("Base image").fill("no-such-image");
    await build();
    await expect.poll(async () => (await errorOf("Base image")).textContent()).toContain("no-such-image");

    await p.getByLabel("Base image").fill("fake");
    // As typed: the same rules as the API (src/domain/names.ts), before anything is sent.
    await p.getByLabel("New image name").fill("Web_Tools");
    await expect.poll(async () => (await errorOf("New image name")).textContent()).toContain("uppercase");
    // Taken: only bangerd knows, and says so beside the name, with its hint.
    await p.getByLabel("New image name").fill("fake-1");
    expect(await (await errorOf("New image name")).isHidden()).toBe(true);
    await build();
    await expect.poll(async () => (await errorOf("New image name")).textContent()).toMatch(/already exists.*Hint: pick another --name/);
    await expect.poll(() => p.getByLabel("New image name").evaluate((el) => el === document.activeElement)).toBe(true);

    await p.getByLabel("New image name").fill("web-tools-1");
    await p.getByLabel("Packages", { exact: true }).fill("jq, curl;id");
    await expect.poll(async () => (await errorOf("Packages")).textContent()).toContain('"curl;id" is not a package name');
    await build();
    // The hint comes only with the API's answer: the refusal is bangerd's, not just the page's.
    await expect.poll(async () => (await errorOf("Packages")).textContent()).toMatch(/"curl;id" is not a package name.*Hint: package names are/);

    // Nothing to do: the error belongs to the steps.
    await p.getByLabel("Packages", { exact: true }).fill("");
    await p.getByRole("button", { name: "Remove step 1" }).click();
    await build();
    await expect.poll(() => p.locator("fieldset.steps-box .field-error").textContent()).toContain("nothing to build");
    await nothingMade();
  });

  it("streams the stages of a build that fails at wait-ssh, shows the stage and hint beside the form, and leaves nothing", async () => {
    await openForm();
    await p.getByLabel("New image name").fill("web-fail-1");
    await p.getByRole("button", { name: "Add command" }).click();
    await p.getByLabel("Command 1").fill("echo hello");
    await p.getByRole("button", { name: "Add script" }).click();
    await p.getByLabel("Script 2", { exact: true }).fill("#!/bin/sh\necho from a script\n");
    // The build's own deadline ends the wait for a guest that never answers.
    await p.getByLabel("Timeout").fill("10s");
    await build();
    await p.locator('tr[data-stage="verify-base"][data-outcome="ok"]').waitFor();
    await p.locator('tr[data-stage="spawn-vmm"][data-outcome="ok"]').waitFor();
    // The builder exists while it runs, as the CLI sees it.
    const builder = await builderOnPage();
    expect(builder).toMatch(/^builder-[0-9a-f]{8}$/);
    expect((await d.cli(["vm", "show", builder])).code).toBe(0);
    await p.getByRole("heading", { name: "Build failed" }).waitFor({ timeout: 120_000 });
    expect(await p.locator('tr[data-stage="wait-ssh"]').getAttribute("data-outcome")).toBe("failed");
    const err = p.locator(".form-error");
    expect(await err.isVisible()).toBe(true);
    // The SSH wait is cut to what is left of the build's deadline, so either of the two may fire first.
    await expect
      .poll(() => err.textContent())
      .toMatch(/^(TIMEOUT|GUEST_NOT_READY): image build of web-fail-1 failed at stage wait-ssh: .*Failed stage: wait-ssh/);
    await noSeriousAxeViolations();
    await screenshots(p, "image-build-failed");
    await builderGone(builder);
    await nothingMade();
  });

  it("cancels a build from the page: bangerd undoes it and the page says nothing was left", async () => {
    await openForm();
    await p.getByLabel("New image name").fill("web-cancel-1");
    await p.getByLabel("Packages", { exact: true }).fill("jq");
    await p.getByLabel("Promote as").fill("tools");
    await build();
    await p.locator('tr[data-stage="wait-ssh"][data-outcome="running"]').waitFor({ timeout: 120_000 });
    const builder = await builderOnPage();
    expect((await d.cli(["vm", "show", builder])).code).toBe(0);
    await p.getByRole("button", { name: "Cancel build" }).click();
    await p.getByRole("heading", { name: "Build cancelled" }).waitFor();
    await expect.poll(() => p.locator("p.build-clock").textContent(), { timeout: 120_000 }).toContain("nothing was left behind");
    expect(await p.locator('tr[data-stage="wait-ssh"]').getAttribute("data-outcome")).toBe("cancelled");
    await builderGone(builder);
    await nothingMade();
    expect(await p.getByRole("button", { name: "Build", exact: true }).isEnabled()).toBe(true);
  });

  it("has no serious or critical axe violations on the filled-in form with a live error, light and dark (the failed state is checked above)", async () => {
    await openForm();
    await p.getByRole("button", { name: "Add script" }).click();
    await p.getByLabel("Script 1", { exact: true }).fill("#!/bin/sh\nset -e\napt-get install -y jq\n");
    await p.getByRole("button", { name: "Add command" }).click();
    await p.getByLabel("Command 2").fill("jq --version");
    await p.getByLabel("New image name").fill("Bad Name");
    await noSeriousAxeViolations();
    await screenshots(p, "image-build");
    await p.setViewportSize({ width: 420, height: 800 });
    await p.screenshot({ path: join(SHOTS, "image-build-narrow.png"), fullPage: true });
    await p.setViewportSize({ width: 1280, height: 800 });
  });

  it("links a built image's row: #/images?show=<name> marks and scrolls to it; Images stays current in the nav", async () => {
    await p.goto(`${BASE}/#/images?show=fake-1`);
    const row = p.locator('tr[data-image="fake-1"]');
    await expect.poll(() => row.getAttribute("aria-current")).toBe("true");
    expect(await p.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Images" }).getAttribute("aria-current")).toBe("page");
    await p.getByRole("link", { name: "Build an image" }).click();
    await p.getByRole("heading", { name: "Build an image" }).waitFor();
    expect(await p.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Images" }).getAttribute("aria-current")).toBe("page");
  });
});
