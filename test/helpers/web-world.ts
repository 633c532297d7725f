import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { fakeImageArgs } from "./artifacts.js";
import { startTestDaemon, type TestDaemon } from "./daemon.js";
import { launchIn, webConfig, type Browser } from "./browser.js";
import { createNetns } from "./netns.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";

export const BASE = "http://127.0.0.1:7780";

export interface WebWorld {
  d: TestDaemon;
  b: Browser;
  /** Artifacts of the registered fake image (vmlinux, rootfs.ext4, seed.ext4). */
  art: string;
  /** A fresh one-time login link from `banger web`. */
  link(): Promise<string>;
  /** Open a link in the browser: it then holds a session. */
  login(): Promise<void>;
  cliVms(): Promise<{ name: string; state: string }[]>;
  /** curl inside the namespace: a client without the browser's cookies; stdout is the HTTP status. */
  curl(args: string[]): Promise<{ stdout: string }>;
  destroy(): Promise<void>;
}

/**
 * A real bangerd (real SQLite, TAPs, nft, disks) whose only fake is Firecracker, with the web UI
 * on its namespace's loopback, image `fake-1` promoted as `fake`, and Chromium in the same
 * namespace. The fake boots no guest: a create that waits for SSH fails after 5 s, at wait-ssh.
 */
export async function webWorld(prefix: string, config: Record<string, string | number> = {}): Promise<WebWorld> {
  const ns = await createNetns(prefix);
  const dir = mkdtempSync(join(tmpdir(), "banger-web-"));
  const d = await startTestDaemon({
    ns,
    dir,
    configText: webConfig(dir, { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 2, ssh_timeout_s: 5, ...config }),
    env: FAKE_FC_ENV,
  });
  const art = mkdtempSync(join(tmpdir(), "banger-web-art-"));
  expect((await d.cli(fakeImageArgs(art, "fake-1"))).code).toBe(0);
  expect((await d.cli(["image", "promote", "fake-1", "--as", "fake"])).code).toBe(0);
  const b = await launchIn(ns);
  const w: WebWorld = {
    d,
    b,
    art,
    async link() {
      const r = await d.cli(["--json", "web"]);
      expect(r.code, r.stderr).toBe(0);
      return r.json<{ url: string }>().url;
    },
    async login() {
      await b.page.goto(await w.link());
      await b.page.getByRole("heading", { name: "VMs" }).waitFor();
    },
    cliVms: async () => (await d.cli(["--json", "vm", "ls"])).json<{ vms: { name: string; state: string }[] }>().vms,
    curl: (args) => d.ns.exec("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", ...args]),
    async destroy() {
      await b.close();
      await d.destroy();
      await ns.destroy();
      rmSync(art, { recursive: true, force: true });
    },
  };
  return w;
}
