// banger-k8s's --server/--token-file source (src/adapters/k8s/kubeconfig.ts) against the fake API server over
// plain HTTP, as `kubectl proxy` or a test server serves it: the real client must accept it, and
// still verify https:// (the e2e cluster test found --server http://... refused by client-node).
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadKube } from "../../src/adapters/k8s/kubeconfig.js";
import { type Kit, startKit } from "../fakes/kube-apiserver/testkit.js";

let kit: Kit;
beforeAll(async () => {
  kit = await startKit();
});
afterAll(async () => {
  await kit?.server.close();
});

it("--server http://... with a token reaches the API server", async () => {
  const { kc, namespace } = loadKube({ server: kit.server.url, token: "test-token" });
  expect(namespace).toBe("default");
  const nss = await kc.makeApiClient(CoreV1Api).listNamespace();
  expect(nss.items.map((n) => n.metadata?.name)).toContain("default");
});

it("--server https://... keeps TLS verification on", () => {
  const { kc } = loadKube({ server: "https://10.0.0.1:6443", token: "t" });
  expect(kc.getCurrentCluster()?.skipTLSVerify).toBe(false);
});
