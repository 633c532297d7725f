// The fake Kubernetes API server as its own process (how e2e tests run it beside bangerd nodes): it prints its
// URL, serves the real client's requests, honours its token, and stops on SIGTERM.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { resolve } from "node:path";
import { expect, it } from "vitest";
import { CoreV1Api } from "@kubernetes/client-node";
import { kubeConfig } from "../fakes/kube-apiserver/testkit.js";

const MAIN = resolve(import.meta.dirname, "../fakes/kube-apiserver/main.ts");
const VITE_NODE = resolve(import.meta.dirname, "../../node_modules/.bin/vite-node");

it("runs standalone: prints its URL, serves the client, stops on SIGTERM", async () => {
  const child = spawn(VITE_NODE, [MAIN, "--", "--listen", "127.0.0.1:0", "--token", "t0k"], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const line = await new Promise<string>((ok, fail) => {
      const rl = createInterface({ input: child.stdout });
      rl.once("line", ok);
      child.once("exit", (code) => fail(new Error(`fake exited with ${code} before printing its URL`)));
    });
    const { url } = JSON.parse(line) as { url: string };
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const core = kubeConfig(url, "t0k").makeApiClient(CoreV1Api);
    const nss = await core.listNamespace();
    expect(nss.items.map((n) => n.metadata?.name)).toEqual(["default", "kube-node-lease", "kube-public", "kube-system"]);
    const denied = await kubeConfig(url, "wrong")
      .makeApiClient(CoreV1Api)
      .listNamespace()
      .then(
        () => 0,
        (e: { code?: number }) => e.code,
      );
    expect(denied).toBe(401);
  } finally {
    const exited = new Promise<number | null>((ok) => child.once("exit", (code) => ok(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }
});
