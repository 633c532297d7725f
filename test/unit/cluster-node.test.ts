import pino from "pino";
import { describe, expect, it } from "vitest";
import { ClusterNode, type ClusterNodeDeps } from "../../src/app/cluster-node.js";
import { vmNameFor, sameStatus, statusOf } from "../../src/app/cluster-node-status.js";
import { EventBus } from "../../src/app/event-bus.js";
import { BangerError } from "../../src/domain/errors.js";
import type { MicroVm, MicroVmStatus } from "../../src/domain/microvm.js";
import type { Image, Vm } from "../../src/domain/types.js";

const log = pino({ level: "silent" });
const IMAGE = { id: "img-1", name: "debian" } as Image;

function microvm(uid: string, extra: Partial<MicroVm> = {}): MicroVm {
  return { namespace: "team", name: `mv-${uid}`, uid, deleting: false, spec: { image: "debian", vcpus: 1, memoryMib: 256 }, status: {}, ...extra };
}

/**
 * A stand-in for ExternalVms that does NOT join concurrent creates: if the agent ever ran two
 * passes for one uid at once, it would make two VMs here, and the tests would see it.
 */
class FakeExternal {
  readonly vms = new Map<string, Vm>();
  creates = 0;
  removes = 0;
  inFlight = new Set<string>();
  maxInFlight = 0;
  gate: Promise<void> = Promise.resolve();
  failNext?: BangerError;
  get(id: string) {
    return this.vms.get(id);
  }
  creating(id: string) {
    return this.inFlight.has(id);
  }
  list(prefix: string) {
    return [...this.vms.values()].filter((v) => v.externalId?.startsWith(prefix));
  }
  async ensure(id: string, spec: { image: string }, opts: { name?: string }) {
    const have = this.vms.get(id);
    if (have) return { vm: have, created: false };
    this.creates++;
    this.inFlight.add(id);
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight.size);
    try {
      await this.gate;
      if (this.failNext) {
        const e = this.failNext;
        this.failNext = undefined;
        throw e;
      }
      const vm = {
        id: `vm-${this.creates}`,
        name: opts.name!,
        externalId: id,
        state: "running",
        ip: `172.30.0.${this.creates + 1}`,
        imageName: spec.image,
      } as Vm;
      this.vms.set(id, vm);
      return { vm, created: true };
    } finally {
      this.inFlight.delete(id);
    }
  }
  async remove(id: string) {
    this.removes++;
    const vm = this.vms.get(id);
    this.vms.delete(id);
    return vm ? { removed: vm.name } : {};
  }
}

function world(opts: { images?: Image[]; slots?: number } = {}) {
  const external = new FakeExternal();
  const reports: { uid: string; status: MicroVmStatus }[] = [];
  const released: string[] = [];
  const registered: unknown[] = [];
  const images = opts.images ?? [IMAGE];
  const deps: ClusterNodeDeps = {
    engine: {
      watchAssigned: () => Promise.resolve(),
      report: (vm, status) => (reports.push({ uid: vm.uid, status }), Promise.resolve()),
      release: (vm) => (released.push(vm.uid), Promise.resolve()),
      registerNode: (node, cap) => (registered.push({ node, cap }), Promise.resolve()),
    },
    external: external as unknown as ClusterNodeDeps["external"],
    ensureImage: (ref) => {
      const img = images.find((i) => i.name === ref);
      return img ? Promise.resolve(img) : Promise.reject(new BangerError("IMAGE_NOT_FOUND", `no image ${ref}`));
    },
    events: () => [],
    nameTaken: (n) => [...external.vms.values()].some((v) => v.name === n),
    capacity: () => ({ vcpus: 4, memoryMib: 8192, microvms: 3, images: [] }),
    log,
  };
  const agent = new ClusterNode(deps, { node: "node-a", waitSsh: true, resyncMs: 60_000, maxParallelCreates: opts.slots ?? 8 });
  const last = (uid: string) => reports.filter((r) => r.uid === uid).at(-1)?.status;
  return { agent, external, reports, released, registered, last };
}

describe("node agent convergence", () => {
  it("duplicated and replayed sets while a create is in flight make exactly one VM, then report Running with ip", async () => {
    const w = world();
    let open!: () => void;
    w.external.gate = new Promise((r) => (open = r));
    const a = microvm("u1");
    w.agent.onAssigned([a]);
    // The same event three more times, as a watch replay after a reconnect would deliver it.
    for (let i = 0; i < 3; i++) w.agent.onAssigned([microvm("u1")]);
    await new Promise((r) => setTimeout(r, 10));
    expect(w.external.creates).toBe(1);
    open();
    await w.agent.settled();
    expect(w.external.creates).toBe(1);
    expect(w.external.vms.size).toBe(1);
    const st = w.last("u1")!;
    expect(st).toMatchObject({ phase: "Running", node: "node-a", ip: "172.30.0.2", vmName: "team-mv-u1" });
    expect(st.conditions?.map((c) => [c.type, c.status])).toEqual([
      ["ImageReady", "True"],
      ["Ready", "True"],
    ]);
    // Phases went Creating → Running, nothing else (a replayed stale object may get the same status again: idempotent).
    const phases = w.reports.filter((r) => r.uid === "u1").map((r) => r.status.phase);
    expect(phases.filter((p, i) => p !== phases[i - 1])).toEqual(["Creating", "Running"]);
  });

  it("out of order: a deletion that arrives while the create runs removes the VM and releases the finalizer, and no VM is left", async () => {
    const w = world();
    let open!: () => void;
    w.external.gate = new Promise((r) => (open = r));
    w.agent.onAssigned([microvm("u2")]);
    await new Promise((r) => setTimeout(r, 5));
    w.agent.onAssigned([microvm("u2", { deleting: true })]);
    open();
    await w.agent.settled();
    expect(w.external.vms.size).toBe(0);
    expect(w.released).toEqual(["u2"]);
    // An older event replayed after the deletion does not bring it back while the MicroVM is deleting.
    w.agent.onAssigned([microvm("u2", { deleting: true })]);
    await w.agent.settled();
    expect(w.external.creates).toBe(1);
    expect(w.external.vms.size).toBe(0);
  });

  it("a MicroVM whose Pod is gone loses its VM; a deleting one is released only after its VM is removed", async () => {
    const w = world();
    w.agent.onAssigned([microvm("u3"), microvm("u4")]);
    await w.agent.settled();
    expect(w.external.vms.size).toBe(2);
    w.agent.onAssigned([microvm("u4", { deleting: true })]);
    await w.agent.settled();
    expect(w.external.vms.size).toBe(0);
    expect(w.released).toEqual(["u4"]);
    expect(w.last("u4")?.phase).toBe("Deleting");
  });

  it("restart: orphans (k8s VMs with no MicroVM) are removed, missing VMs created, existing ones kept", async () => {
    const w = world();
    w.external.vms.set("k8s:old", { id: "vm-old", name: "orphan", externalId: "k8s:old", state: "running" } as Vm);
    w.external.vms.set("k8s:keep", { id: "vm-keep", name: "team-mv-keep", externalId: "k8s:keep", state: "running", ip: "172.30.0.9" } as Vm);
    w.external.vms.set("job-7", { id: "vm-job", name: "not-ours", externalId: "job-7", state: "running" } as Vm);
    w.agent.onAssigned([microvm("keep"), microvm("new")]);
    await w.agent.settled();
    expect([...w.external.vms.keys()].sort()).toEqual(["job-7", "k8s:keep", "k8s:new"]);
    expect(w.external.creates).toBe(1);
    expect(w.last("keep")).toMatchObject({ phase: "Running", ip: "172.30.0.9" });
  });

  it("a missing image is ImageReady False / ImageNotFound with no VM; a failed create is Failed with lastError and retried only after a backoff", async () => {
    const w = world();
    w.agent.onAssigned([microvm("u5", { spec: { image: "sha256:" + "a".repeat(64), vcpus: 1, memoryMib: 256 } })]);
    await w.agent.settled();
    const st = w.last("u5")!;
    expect(st.phase).toBe("Failed");
    expect(st.conditions?.find((c) => c.type === "ImageReady")).toMatchObject({ status: "False", reason: "ImageNotFound" });
    expect(w.external.creates).toBe(0);

    w.external.failNext = new BangerError("GUEST_NOT_READY", "no SSH within 5 s", { stage: "wait-ssh" });
    w.agent.onAssigned([microvm("u6")]);
    await w.agent.settled();
    expect(w.last("u6")).toMatchObject({ phase: "Failed", lastError: "wait-ssh: no SSH within 5 s" });
    w.agent.resync();
    await w.agent.settled();
    expect(w.external.creates).toBe(1);
  });

  it("runs at most max_parallel_creates creates at once; the rest wait as Placed/Queued in order, and a deletion leaves the queue at once", async () => {
    const w = world({ slots: 2 });
    let open!: () => void;
    w.external.gate = new Promise((r) => (open = r));
    const mvs = ["q1", "q2", "q3", "q4"].map((u) => microvm(u));
    w.agent.onAssigned(mvs);
    await new Promise((r) => setTimeout(r, 10));
    expect(w.external.creates).toBe(2);
    expect(w.agent.status).toMatchObject({ creating: 2, queued: 2 });
    for (const u of ["q3", "q4"]) {
      const st = w.last(u)!;
      expect(st.phase).toBe("Placed");
      expect(st.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "Queued" });
      expect(st.conditions?.find((c) => c.type === "Ready")?.message).toContain("cluster.max_parallel_creates");
    }
    // q4 is deleted while it waits: it leaves the queue and its finalizer goes without waiting for a slot.
    w.agent.onAssigned([...mvs.slice(0, 3), microvm("q4", { deleting: true })]);
    await new Promise((r) => setTimeout(r, 10));
    expect(w.released).toEqual(["q4"]);
    expect(w.agent.status).toMatchObject({ creating: 2, queued: 1 });
    open();
    await w.agent.settled();
    expect(w.external.maxInFlight).toBe(2);
    expect(w.external.creates).toBe(3);
    expect([...w.external.vms.keys()].sort()).toEqual(["k8s:q1", "k8s:q2", "k8s:q3"]);
    const phases = w.reports.filter((r) => r.uid === "q3").map((r) => r.status.phase);
    expect(phases.filter((p, i) => p !== phases[i - 1])).toEqual(["Placed", "Creating", "Running"]);
    expect(w.agent.status).toMatchObject({ creating: 0, queued: 0 });
  });

  it("does nothing before the first full set (an empty cache is not 'nothing assigned')", async () => {
    const w = world();
    w.external.vms.set("k8s:x", { id: "vm-x", name: "x", externalId: "k8s:x", state: "running" } as Vm);
    w.agent.resync();
    await w.agent.settled();
    expect(w.external.removes).toBe(0);
  });

  it("status helpers: names are DNS labels and unique; an unchanged status is not written again", () => {
    const taken = new Set(["team-a"]);
    expect(vmNameFor({ namespace: "Team", name: "A", uid: "1234abcd-ffff" }, (n) => taken.has(n))).toBe("team-a-1234abcd");
    expect(vmNameFor({ namespace: "ns", name: "x".repeat(80), uid: "u" }, () => false)).toMatch(/^[a-z0-9-]{1,63}$/);
    const mv = microvm("s");
    const s = statusOf(mv, { phase: "Running", node: "n", stages: [], ready: { ready: true, reason: "Running", message: "m" } }, "2026-01-01T00:00:00Z");
    mv.status = s;
    const again = statusOf(mv, { phase: "Running", node: "n", stages: [], ready: { ready: true, reason: "Running", message: "m" } }, "2027-01-01T00:00:00Z");
    expect(again.conditions?.[0].lastTransitionTime).toBe("2026-01-01T00:00:00Z");
    expect(sameStatus(again, s)).toBe(true);
  });
});

describe("event bus resume tokens", () => {
  it("replays what it holds after a token and refuses a token of another boot or one older than the history", () => {
    const bus = new EventBus(3);
    const start = bus.latest;
    for (let i = 0; i < 2; i++) bus.publish({ type: "images" });
    expect(bus.since(start)?.map((e) => e.seq)).toEqual([1, 2]);
    for (let i = 0; i < 3; i++) bus.publish({ type: "images" });
    expect(bus.since(start)).toBeUndefined();
    expect(bus.since(bus.token(2))?.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(bus.since(bus.latest)).toEqual([]);
    expect(bus.since("00000000.1")).toBeUndefined();
    expect(bus.since("garbage")).toBeUndefined();
  });
});
