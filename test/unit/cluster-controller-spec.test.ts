// The controller's part of spec.peers and spec.ttlSeconds, against an in-memory ClusterControl.
import pino from "pino";
import { describe, expect, it } from "vitest";
import { ClusterController, DEFAULT_POLICY } from "../../src/app/cluster-controller.js";
import type { MicroVmStatus } from "../../src/domain/microvm.js";
import type { ClusterControl, ClusterView, Placeholder, WatchedMicroVm } from "../../src/ports/cluster-control.js";
import { until } from "../fakes/kube-apiserver/testkit.js";

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

function vm(name: string, spec: Partial<WatchedMicroVm["spec"]> = {}, status: MicroVmStatus = {}): WatchedMicroVm {
  return {
    namespace: "default",
    name,
    uid: `uid-${name}`,
    deleting: false,
    hasFinalizer: true,
    spec: { image: "fake-1", vcpus: 1, memoryMib: 256, ...spec },
    status,
  };
}

/** Records every verb; status writes apply to `statuses`. */
class Stub implements ClusterControl {
  placed: { name: string; colocate?: readonly string[] }[] = [];
  removed: string[] = [];
  statuses = new Map<string, MicroVmStatus>();
  constructor(private readonly view: ClusterView) {
    for (const v of view.microVms) this.statuses.set(v.uid, v.status);
  }
  async watch(onChange: (v: ClusterView) => void, signal: AbortSignal): Promise<void> {
    onChange(this.view);
    await new Promise((r) => signal.addEventListener("abort", r, { once: true }));
  }
  async place(v: WatchedMicroVm, colocate?: readonly string[]) {
    this.placed.push({ name: v.name, colocate });
  }
  async nodeExists() {
    return true;
  }
  async unplace() {}
  async addFinalizer() {}
  async dropFinalizer() {}
  async remove(v: { name: string }) {
    this.removed.push(v.name);
  }
  async updateStatus(v: { uid: string }, change: (s: MicroVmStatus) => MicroVmStatus | undefined) {
    const next = change(this.statuses.get(v.uid) ?? {});
    if (next) this.statuses.set(v.uid, next);
  }
}

const bound = (v: WatchedMicroVm, node = "node-a"): Placeholder => ({
  namespace: v.namespace,
  name: `microvm-${v.name}`,
  uid: `pod-${v.name}`,
  microVmUid: v.uid,
  node,
  deleting: false,
});

async function run(stub: Stub, until_: () => boolean, policy = {}): Promise<void> {
  const ac = new AbortController();
  const done = new ClusterController(stub, pino({ level: "silent" }), { ...DEFAULT_POLICY, ...policy }).run(ac.signal);
  try {
    await until("the controller to act", until_);
  } finally {
    ac.abort();
    await done;
  }
}

describe("controller: time to live", () => {
  it("records runningSince from the Ready transition of a MicroVM it first sees Running", async () => {
    const readyAt = iso(Date.now() - 3000);
    const v = vm(
      "a",
      { ttlSeconds: 3600 },
      {
        phase: "Running",
        node: "node-a",
        conditions: [{ type: "Ready", status: "True", reason: "Running", message: "", lastTransitionTime: readyAt }],
      },
    );
    const stub = new Stub({ microVms: [v], placeholders: [bound(v)], nodes: [{ name: "node-a", ready: true }] });
    await run(stub, () => stub.statuses.get(v.uid)?.runningSince !== undefined);
    expect(stub.statuses.get(v.uid)?.runningSince).toBe(readyAt);
    expect(stub.removed).toEqual([]);
  });

  it("deletes a MicroVM whose time to live is over, and only that one (runningSince from status: a restarted controller)", async () => {
    const old = vm("old", { ttlSeconds: 5 }, { phase: "Running", node: "node-a", runningSince: iso(Date.now() - 60_000) });
    const young = vm("young", { ttlSeconds: 3600 }, { phase: "Running", node: "node-a", runningSince: iso(Date.now()) });
    const forever = vm("forever", {}, { phase: "Running", node: "node-a", runningSince: iso(Date.now() - 60_000) });
    const stub = new Stub({
      microVms: [old, young, forever],
      placeholders: [old, young, forever].map((x) => bound(x)),
      nodes: [{ name: "node-a", ready: true }],
    });
    await run(stub, () => stub.removed.length > 0);
    expect(stub.removed).toEqual(["old"]);
  });

  it("wakes by a timer when the time to live ends, with no resync and no event", async () => {
    const v = vm("soon", { ttlSeconds: 2 }, { phase: "Running", node: "node-a", runningSince: iso(Date.now()) });
    const stub = new Stub({ microVms: [v], placeholders: [bound(v)], nodes: [{ name: "node-a", ready: true }] });
    await run(stub, () => stub.removed.length > 0, { resyncMs: 3_600_000 });
    expect(stub.removed).toEqual(["soon"]);
  });
});

describe("controller: peers", () => {
  it("places each MicroVM co-located with its peer group, either side declaring", async () => {
    const a = vm("a", { peers: ["b"] });
    const b = vm("b");
    const c = vm("c");
    const stub = new Stub({ microVms: [a, b, c], placeholders: [], nodes: [] });
    await run(stub, () => stub.placed.length === 3);
    expect(stub.placed.sort((x, y) => x.name.localeCompare(y.name))).toEqual([
      { name: "a", colocate: ["b"] },
      { name: "b", colocate: ["a"] },
      { name: "c", colocate: [] },
    ]);
  });
});
