import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { REPO, testConfig } from "./daemon.js";
import type { Netns } from "./netns.js";

export const CHROMIUM = process.env.BANGER_CHROMIUM ?? "/usr/bin/chromium";
export const SHOTS = join(REPO, "build/ui");

/** Debian's chromium (scripts/host-deps.sh); never a downloaded browser build. */
export function chromiumSkipReason(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `needs Debian's chromium at ${CHROMIUM} (apt-get install chromium; scripts/host-deps.sh installs it)`;
}

/** The test daemon's config with the web UI on, on the namespace's own loopback. */
export function webConfig(dir: string, extra: Record<string, string | number> = {}, listen = "127.0.0.1:7780"): string {
  return testConfig(dir, extra).replace('[web]\nlisten = ""', `[web]\nlisten = "${listen}"`);
}

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/**
 * Chromium inside the daemon's network namespace (it sees the daemon's 127.0.0.1 and nothing
 * else), through a wrapper script, with a fresh profile directory each launch.
 */
export async function launchIn(ns: Netns): Promise<Browser> {
  const dir = mkdtempSync(join(tmpdir(), "banger-chromium-"));
  const wrapper = join(dir, "chromium-in-ns");
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns.name} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
  const profile = join(dir, "profile");
  mkdirSync(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: wrapper,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 800 },
    timeout: 120_000,
  });
  context.setDefaultTimeout(60_000);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Light and dark screenshots of the current page under build/ui/. */
export async function screenshots(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.screenshot({ path: join(SHOTS, `${name}-${scheme}.png`), fullPage: true });
  }
  await page.emulateMedia({ colorScheme: "light" });
}
