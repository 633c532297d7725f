import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadKube } from "../../src/adapters/k8s/kubeconfig.js";
import { type BangerError } from "../../src/domain/errors.js";

const dir = mkdtempSync(join(tmpdir(), "kubeconfig-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function refusal(f: () => unknown): BangerError {
  try {
    f();
  } catch (e) {
    return e as BangerError;
  }
  throw new Error("loadKube accepted it");
}

const file = join(dir, "config");
writeFileSync(
  file,
  [
    "apiVersion: v1",
    "kind: Config",
    "clusters: [{name: lab, cluster: {server: 'https://10.0.0.1:6443'}}]",
    "users: [{name: ops, user: {token: abc}}]",
    "contexts: [{name: lab, context: {cluster: lab, user: ops, namespace: sandboxes}}, {name: other, context: {cluster: lab, user: ops}}]",
    "current-context: lab",
  ].join("\n"),
);

describe("loadKube: one loader for the controller, the CLI and the node agent", () => {
  it("an https server needs a token; a plain-http proxy does not, and is not TLS-verified", () => {
    const e = refusal(() => loadKube({ server: "https://api.example:6443" }));
    expect(e.code).toBe("INVALID_CONFIG");
    expect(e.message).toMatch(/no token for the API server https:\/\/api.example:6443/);
    const { kc, namespace } = loadKube({ server: "http://127.0.0.1:8001" });
    expect(kc.getCurrentCluster()).toMatchObject({ server: "http://127.0.0.1:8001", skipTLSVerify: true });
    expect(kc.getCurrentUser()?.token).toBeUndefined();
    expect(namespace).toBe("default");
  });

  it("a token file's content is the bearer token, trimmed", () => {
    const tf = join(dir, "token");
    writeFileSync(tf, "s3cret\n");
    const { kc } = loadKube({ server: "https://api.example:6443", tokenFile: tf });
    expect(kc.getCurrentUser()?.token).toBe("s3cret");
    expect(kc.getCurrentCluster()?.skipTLSVerify).toBe(false);
  });

  it("refuses a server that is not an http(s) URL", () => {
    expect(refusal(() => loadKube({ server: "api.example:6443", token: "t" })).message).toMatch(/not an http\(s\) URL/);
  });

  it("a kubeconfig file: its current context and namespace, or the context named", () => {
    expect(loadKube({ kubeconfig: file }).namespace).toBe("sandboxes");
    const other = loadKube({ kubeconfig: file, context: "other" });
    expect(other.kc.getCurrentContext()).toBe("other");
    expect(other.namespace).toBe("default");
    const e = refusal(() => loadKube({ kubeconfig: file, context: "prod" }));
    expect(e.message).toMatch(/no context prod/);
    expect(e.hint).toMatch(/lab, other/);
  });

  it("a missing kubeconfig and in-cluster outside a Pod are refused with the fix", () => {
    expect(refusal(() => loadKube({ kubeconfig: join(dir, "nope") })).hint).toMatch(/--kubeconfig FILE/);
    const was = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      expect(refusal(() => loadKube({ inCluster: true })).message).toMatch(/outside a Pod/);
    } finally {
      if (was !== undefined) process.env.KUBERNETES_SERVICE_HOST = was;
    }
  });
});
