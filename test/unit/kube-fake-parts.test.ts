// Pieces of the fake Kubernetes API server checked on their own: quantities, selectors, the scheduler's
// filters and message, strategic merge from the OpenAPI document's patch extensions, and the response self-check.
import { beforeAll, describe, expect, it } from "vitest";
import { parseQuantity, schedulerUnits } from "../fakes/kube-apiserver/quantity.js";
import { fieldSelector, labelSelector } from "../fakes/kube-apiserver/selectors.js";
import { filter, fitMessage } from "../fakes/kube-apiserver/scheduler.js";
import { strategicMerge } from "../fakes/kube-apiserver/patch.js";
import { Admission } from "../fakes/kube-apiserver/validate.js";
import { CustomSchemas } from "../fakes/kube-apiserver/crd.js";
import { type SwaggerSchemas } from "../fakes/kube-apiserver/schema.js";
import { swagger } from "../fakes/kube-apiserver/testkit.js";
import { type KObj } from "../fakes/kube-apiserver/types.js";

let sw: SwaggerSchemas;
beforeAll(() => {
  sw = swagger();
});

describe("quantities", () => {
  it("parses the suffixes resource.Quantity takes and rounds up like MilliValue/Value", () => {
    expect(parseQuantity("512Mi")).toBe(512 * 2 ** 20);
    expect(parseQuantity("1Gi")).toBe(2 ** 30);
    expect(parseQuantity("1e3")).toBe(1000);
    expect(parseQuantity("1.5G")).toBe(1.5e9);
    expect(schedulerUnits("cpu", "500m")).toBe(500);
    expect(schedulerUnits("cpu", "0.1")).toBe(100);
    expect(schedulerUnits("cpu", 2)).toBe(2000);
    expect(schedulerUnits("memory", "1.5Ki")).toBe(1536);
    expect(schedulerUnits("memory", "100m")).toBe(1);
    expect(() => parseQuantity("12 parsecs")).toThrow(/regular expression/);
    expect(() => parseQuantity("")).toThrow();
  });
});

describe("selectors", () => {
  const obj = (labels: Record<string, string>, spec: Record<string, unknown> = {}): KObj => ({ metadata: { name: "p", namespace: "ns", labels }, spec });
  it("matches label requirements: =, !=, in, notin, exists, !exists", () => {
    const m = labelSelector("app=web,tier!=db,env in (a, b),zone notin (x),team,!legacy");
    expect(m(obj({ app: "web", env: "a", team: "t" }))).toBe(true);
    expect(m(obj({ app: "web", env: "c", team: "t" }))).toBe(false);
    expect(m(obj({ app: "web", env: "a", team: "t", legacy: "1" }))).toBe(false);
    expect(m(obj({ app: "web", env: "b", tier: "db", team: "t" }))).toBe(false);
    expect(() => labelSelector("a b c")).toThrow(/unable to parse/);
  });
  it("supports only the field paths the real server supports per kind", () => {
    expect(fieldSelector("spec.nodeName=n1", "Pod")(obj({}, { nodeName: "n1" }))).toBe(true);
    expect(fieldSelector("spec.nodeName!=n1", "Pod")(obj({}, { nodeName: "n1" }))).toBe(false);
    expect(fieldSelector("spec.nodeName=", "Pod")(obj({}))).toBe(true);
    expect(() => fieldSelector("spec.nodeName=n1", "Namespace")).toThrow(/field label not supported/);
  });
});

describe("scheduler filters", () => {
  const node: KObj = {
    metadata: { name: "n", labels: { "banger.dev/node": "true" } },
    spec: { taints: [{ key: "banger.dev/microvm", effect: "NoSchedule" }] },
    status: { allocatable: { cpu: "2", memory: "1Gi", "banger.dev/microvm": "1" }, conditions: [{ type: "Ready", status: "True" }] },
  };
  const pod = (req: Record<string, string>, tolerate = true): KObj => ({
    metadata: { name: "p" },
    spec: { containers: [{ name: "c", resources: { requests: req } }], tolerations: tolerate ? [{ key: "banger.dev/microvm", operator: "Exists" }] : [] },
  });
  it("reports every insufficient resource, counting what the node already runs", () => {
    expect(filter(pod({ cpu: "1", memory: "512Mi", "banger.dev/microvm": "1" }), node, {}, 0)).toEqual([]);
    expect(filter(pod({ cpu: "1500m", memory: "512Mi", "banger.dev/microvm": "1" }), node, { cpu: 1000, "banger.dev/microvm": 1 }, 1)).toEqual([
      "Insufficient cpu",
      "Insufficient banger.dev/microvm",
    ]);
    expect(filter(pod({ "example.com/gpu": "1" }), node, {}, 0)).toEqual(["Insufficient example.com/gpu"]);
  });
  it("stops at the first failing filter, taints before affinity before resources", () => {
    expect(filter(pod({ memory: "8Gi" }, false), node, {}, 0)).toEqual(["node(s) had untolerated taint {banger.dev/microvm: }"]);
    const wrongZone = { ...pod({ memory: "8Gi" }), spec: { ...pod({ memory: "8Gi" }).spec, nodeSelector: { zone: "a" } } };
    expect(filter(wrongZone, node, {}, 0)).toEqual(["node(s) didn't match Pod's node affinity/selector"]);
  });
  it("words the FitError as kube-scheduler does", () => {
    expect(fitMessage(3, new Map([["Insufficient memory", 3]]))).toBe("0/3 nodes are available: 3 Insufficient memory.");
    expect(fitMessage(0, new Map())).toBe("no nodes available to schedule pods");
  });
});

describe("strategic merge patch from the OpenAPI document", () => {
  it("merges containers by name, conditions by type, finalizers as a set, and honours $patch: delete", () => {
    const pod = {
      metadata: { name: "p", finalizers: ["a"] },
      spec: {
        containers: [
          { name: "a", image: "1" },
          { name: "b", image: "2" },
        ],
      },
      status: { conditions: [{ type: "PodScheduled", status: "False" }] },
    };
    const out = strategicMerge(sw, "io.k8s.api.core.v1.Pod", pod, {
      metadata: { finalizers: ["b", "a"] },
      spec: {
        containers: [
          { name: "b", image: "3" },
          { name: "a", $patch: "delete" },
        ],
      },
      status: {
        conditions: [
          { type: "PodScheduled", status: "True" },
          { type: "Ready", status: "False" },
        ],
      },
    }) as typeof pod;
    expect(out.metadata.finalizers).toEqual(["a", "b"]);
    expect(out.spec.containers).toEqual([{ name: "b", image: "3" }]);
    expect(out.status.conditions).toEqual([
      { type: "PodScheduled", status: "True" },
      { type: "Ready", status: "False" },
    ]);
  });
});

describe("response self-check", () => {
  it("catches a body the real API would never return (so the check can fail)", () => {
    const adm = new Admission(sw, new CustomSchemas(), () => undefined);
    expect(
      adm.checkResponse("io.k8s.api.core.v1.Pod", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "p" },
        spec: { containers: [{ name: "c", image: "x" }] },
      }),
    ).toEqual([]);
    expect(
      adm.checkResponse("io.k8s.api.core.v1.Pod", { apiVersion: "v1", kind: "Pod", metadata: { name: "p" }, spec: { containers: [{ image: "x" }] }, extra: 1 }),
    ).toEqual(["unknown field extra", "spec.containers[0].name: Required value"]);
    expect(adm.checkResponse("io.k8s.apimachinery.pkg.apis.meta.v1.Status", { kind: "Status", apiVersion: "v1", metadata: {}, code: "409" })).toHaveLength(1);
  });
});
