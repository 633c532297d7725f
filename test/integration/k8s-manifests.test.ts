// Every manifest in deploy/k8s, held to the real API: the CRD and a Namespace applied to the strict
// fake; the kinds it does not serve (RBAC, ServiceAccount, Deployment, DaemonSet) checked against
// the same OpenAPI document with the fake's own validator.
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Kit, MVM, raw, rejection, swagger } from "../fakes/kube-apiserver/testkit.js";
import { manifests, DEPLOY, microVm, startWorld } from "../helpers/k8s-world.js";

const DEFINITIONS: Record<string, string> = {
  Namespace: "io.k8s.api.core.v1.Namespace",
  ServiceAccount: "io.k8s.api.core.v1.ServiceAccount",
  ClusterRole: "io.k8s.api.rbac.v1.ClusterRole",
  ClusterRoleBinding: "io.k8s.api.rbac.v1.ClusterRoleBinding",
  Deployment: "io.k8s.api.apps.v1.Deployment",
  DaemonSet: "io.k8s.api.apps.v1.DaemonSet",
};

let kit: Kit;
beforeAll(async () => {
  kit = await startWorld();
});
afterAll(async () => {
  expect(kit.server.problems()).toEqual([]);
  await kit.server.close();
});

const all = readdirSync(DEPLOY)
  .filter((f) => f.endsWith(".yaml"))
  .flatMap((f) => manifests(f).map((m) => ({ file: f, m })));

describe("deploy/k8s manifests", () => {
  it("are all of a kind this test knows how to check", () => {
    expect(all.length).toBeGreaterThan(8);
    for (const { file, m } of all) expect([...Object.keys(DEFINITIONS), "CustomResourceDefinition", "MicroVM"], file).toContain(m.kind);
  });

  it.each(all.filter(({ m }) => DEFINITIONS[m.kind]).map(({ file, m }) => [`${file} ${m.kind}/${m.metadata.name}`, m]))(
    "%s matches the Kubernetes OpenAPI document",
    (_, m) => {
      expect(swagger().check(DEFINITIONS[m.kind]!, m)).toEqual({ unknown: [], causes: [] });
    },
  );

  it("the check catches a misspelt field (so the cases above could fail)", () => {
    const dep = structuredClone(manifests("controller.yaml")[0]);
    dep.spec.template.spec.containers[0].imagePullPolicyy = "Always";
    expect(swagger().check(DEFINITIONS.Deployment!, dep).unknown).toEqual(["spec.template.spec.containers[0].imagePullPolicyy"]);
  });

  it("the Namespace and the example MicroVM are accepted by the API server with the CRD installed", async () => {
    const ns = manifests("rbac.yaml").find((m) => m.kind === "Namespace");
    expect((await raw(kit, "POST", "/api/v1/namespaces", ns)).code).toBe(201);
    const ex = manifests("example-microvm.yaml")[0];
    const res = await raw(kit, "POST", `/apis/banger.dev/v1alpha1/namespaces/default/microvms`, ex);
    expect(res.code).toBe(201);
    expect(res.body.spec).toEqual({ image: "debian", vcpus: 2, memoryMib: 1024, nat: false, ports: ["8022:22"] });
  });

  it("the CRD defaults and refuses out-of-range specs", async () => {
    const made = await raw(kit, "POST", `/apis/banger.dev/v1alpha1/namespaces/default/microvms`, {
      apiVersion: "banger.dev/v1alpha1",
      kind: "MicroVM",
      metadata: { name: "defaults" },
      spec: { image: `sha256:${"a".repeat(64)}` },
    });
    expect(made.body.spec).toEqual({ image: `sha256:${"a".repeat(64)}`, vcpus: 2, memoryMib: 1024, nat: false });
    const bad: [string, Record<string, unknown>][] = [
      ["spec.vcpus", { vcpus: 65 }],
      ["spec.vcpus", { vcpus: 0 }],
      ["spec.memoryMib", { memoryMib: 64 }],
      ["spec.memoryMib", { memoryMib: 262145 }],
      ["spec.image", { image: "sha256:abc" }],
      ["spec.image", { image: "Debian Latest" }],
      ["spec.ports[0]", { ports: ["127.0.0.1:80:80"] }],
      ["spec.peers[0]", { peers: ["Not_A_Name"] }],
    ];
    for (const [i, [field, spec]] of bad.entries()) {
      const r = await rejection(kit.custom.createNamespacedCustomObject({ ...MVM, namespace: "default", body: microVm(`bad-${i}`, spec) }));
      expect(r.code, JSON.stringify(spec)).toBe(422);
      expect(
        r.body.details.causes.map((c: { field: string }) => c.field),
        JSON.stringify(spec),
      ).toContain(field);
    }
    const status = await raw(kit, "PUT", "/apis/banger.dev/v1alpha1/namespaces/default/microvms/defaults/status", {
      ...made.body,
      status: { phase: "Sleeping" },
    });
    expect(status.code).toBe(422);
  });

  it("grants the controller only what it uses, and nothing on secrets or with wildcards", () => {
    const rbac = manifests("rbac.yaml");
    const role = rbac.find((m) => m.kind === "ClusterRole" && m.metadata.name === "banger-k8s");
    const grants = new Set<string>(role.rules.flatMap((r: any) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${res}:${v}`))));
    expect([...grants].sort()).toEqual(
      [
        "microvms:get",
        "microvms:list",
        "microvms:watch",
        "microvms:update",
        "microvms:delete",
        "microvms/status:get",
        "microvms/status:update",
        "microvms/status:patch",
        "microvms/finalizers:update",
        "pods:get",
        "pods:list",
        "pods:watch",
        "pods:create",
        "pods:delete",
        "nodes:get",
        "nodes:list",
        "nodes:watch",
      ].sort(),
    );
    for (const m of rbac.filter((x) => x.kind === "ClusterRole"))
      for (const r of m.rules) {
        expect(r.verbs).not.toContain("*");
        expect(r.resources).not.toContain("*");
        expect(r.resources).not.toContain("secrets");
      }
    const dep = manifests("controller.yaml")[0];
    expect(dep.spec.template.spec.serviceAccountName).toBe("banger-k8s");
    expect(dep.spec.replicas).toBe(1);
  });
});
