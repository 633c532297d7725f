// banger-k8s under faults: a node removed or NotReady (NodeLost and failover), the controller
// killed while 12 MicroVMs are created, duplicate and out-of-order views (replay).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Watch } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ClusterControl, ClusterView } from "../../src/ports/cluster-control.js";
import { type Kit, MVM, until } from "../fakes/kube-apiserver/testkit.js";
import { type Running, addNode, applyVm, getVm, startController, startWorld, vmPhase } from "../helpers/k8s-world.js";

const BUNDLE = resolve(import.meta.dirname, "../../build/bundle/banger-k8s.js");

let kit: Kit;
let ctl: Running | undefined;

beforeEach(async () => {
  kit = await startWorld();
});

afterEach(async () => {
  await ctl?.stop();
  ctl = undefined;
  expect(kit.server.problems()).toEqual([]);
  await kit.server.close();
});

/** Every pod event from the start, so a test can tell "placed once" from "placed, deleted, placed again". */
async function recordPods(): Promise<{ events: { type: string; name: string }[]; stop: () => void }> {
  const events: { type: string; name: string }[] = [];
  const ctl = await new Watch(kit.kc).watch(
    "/api/v1/pods",
    { resourceVersion: "0" },
    (type, obj: { metadata: { name: string } }) => events.push({ type, name: obj.metadata.name }),
    () => undefined,
  );
  return { events, stop: () => ctl.abort() };
}

describe("banger-k8s node loss", () => {
  it("marks a MicroVM on a removed node NodeLost and places it again elsewhere", async () => {
    await addNode(kit, "node-a", { cpu: "8", memory: "16Gi", microvms: "10" });
    ctl = startController(kit);
    await applyVm(kit, "mover");
    await vmPhase(kit, "mover", "Placed");
    const first = await kit.core.readNamespacedPod({ namespace: "default", name: "microvm-mover" });
    expect(first.spec?.nodeName).toBe("node-a");
    await addNode(kit, "node-b", { cpu: "8", memory: "16Gi", microvms: "10" });

    await kit.core.deleteNode({ name: "node-a" });
    const moved = await until("placed on node-b", async () => {
      const v = await getVm(kit, "mover");
      return v?.status?.phase === "Placed" && v.status.node === "node-b" ? v : undefined;
    });
    const lost = moved.status.conditions.find((c: { type: string }) => c.type === "NodeLost");
    expect(lost).toMatchObject({ status: "False", reason: "Replaced" });
    expect(moved.status.lastError).toBe("node node-a was removed from the cluster");
    const now = await kit.core.readNamespacedPod({ namespace: "default", name: "microvm-mover" });
    expect(now.metadata?.uid).not.toBe(first.metadata?.uid);
    expect(now.spec?.nodeName).toBe("node-b");
    expect(ctl.logs.lines.some((l) => l.stage === "node-lost" && l.reason === "NodeDeleted" && l.node === "node-a")).toBe(true);
  });

  it("keeps NodeLost when no node is left, and releases a deleted MicroVM whose node is gone", async () => {
    await addNode(kit, "solo", { cpu: "8", memory: "16Gi", microvms: "10" });
    ctl = startController(kit);
    await applyVm(kit, "stranded");
    await vmPhase(kit, "stranded", "Placed");
    await kit.core.deleteNode({ name: "solo" });
    const vm = await vmPhase(kit, "stranded", "NodeLost");
    expect(vm.status.conditions).toContainEqual(expect.objectContaining({ type: "NodeLost", status: "True", reason: "NodeDeleted" }));
    expect(vm.status.node).toBe("solo");
    // Nobody is left to clean the VM on that node: deleting the MicroVM must not hang on the finalizer.
    await kit.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name: "stranded" });
    await until("MicroVM gone", async () => (await getVm(kit, "stranded")) === undefined);
  });

  it("fails over from a node NotReady beyond the grace period, not before", async () => {
    await addNode(kit, "node-a", { cpu: "8", memory: "16Gi", microvms: "10" });
    ctl = startController(kit, { nodeLostGraceMs: 60_000 });
    await applyVm(kit, "sick");
    await vmPhase(kit, "sick", "Placed");
    await addNode(kit, "node-b", { cpu: "8", memory: "16Gi", microvms: "10" });
    const setReady = async (status: string, at: Date) => {
      const node = await kit.core.readNodeStatus({ name: "node-a" });
      node.status!.conditions = [{ type: "Ready", status, reason: "KubeletNotReady", message: "no heartbeat", lastTransitionTime: at }];
      await kit.core.replaceNodeStatus({ name: "node-a", body: node });
    };
    // NotReady for a moment: within the grace period nothing moves.
    await setReady("False", new Date());
    // Several resync passes (every 200 ms here) see it NotReady for less than the grace period.
    await sleep(1000);
    expect((await getVm(kit, "sick")).status).toMatchObject({ phase: "Placed", node: "node-a" });
    // NotReady since long ago: lost.
    await setReady("Unknown", new Date(Date.now() - 120_000));
    const moved = await until("placed on node-b", async () => {
      const v = await getVm(kit, "sick");
      return v?.status?.node === "node-b" && v.status.phase === "Placed" ? v : undefined;
    });
    expect(moved.status.lastError).toMatch(/^node node-a has not been Ready since /);
    expect(ctl.logs.lines.some((l) => l.stage === "node-lost" && l.reason === "NodeNotReady")).toBe(true);
  });
});

describe("banger-k8s restarts and replays", () => {
  it.skipIf(!existsSync(BUNDLE))("places 12 MicroVMs exactly once across a kill -9 of the controller (needs `make build`)", async () => {
    await addNode(kit, "node-a", { cpu: "16", memory: "32Gi", microvms: "6" });
    await addNode(kit, "node-b", { cpu: "16", memory: "32Gi", microvms: "6" });
    const dir = mkdtempSync(join(tmpdir(), "banger-k8s-"));
    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(kubeconfig, kit.kc.exportConfig());
    const procs: ChildProcess[] = [];
    const run = () => {
      const p = spawn(process.execPath, [BUNDLE, "--kubeconfig", kubeconfig, "--resync", "1", "--log-level", "debug"], { stdio: ["ignore", "pipe", "pipe"] });
      procs.push(p);
      return p;
    };
    const pods = await recordPods();
    try {
      const first = run();
      const names = Array.from({ length: 12 }, (_, i) => `vm-${i}`);
      await Promise.all(names.map((n) => applyVm(kit, n)));
      // Mid-way: some placed, not all.
      await until("a first placeholder", () => pods.events.some((e) => e.type === "ADDED"));
      first.kill("SIGKILL");
      await new Promise((r) => first.once("exit", r));
      const atKill = pods.events.filter((e) => e.type === "ADDED").length;
      const placedAtKill = (await Promise.all(names.map((n) => getVm(kit, n)))).filter((v) => v?.status?.phase === "Placed").length;
      console.log(`at the kill: ${atKill} placeholders, ${placedAtKill} MicroVMs Placed of 12`);
      run();
      for (const n of names) await vmPhase(kit, n, "Placed");
      const added = pods.events.filter((e) => e.type === "ADDED").map((e) => e.name);
      expect(added.sort()).toEqual(names.map((n) => `microvm-${n}`).sort());
      expect(pods.events.filter((e) => e.type === "DELETED")).toEqual([]);
      const bound = (await kit.core.listNamespacedPod({ namespace: "default" })).items.map((p) => p.spec?.nodeName);
      expect(bound.filter((n) => n === "node-a")).toHaveLength(6);
      expect(bound.filter((n) => n === "node-b")).toHaveLength(6);
    } finally {
      pods.stop();
      for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("converges under duplicate and out-of-order (stale) views", async () => {
    await addNode(kit, "node-a", { cpu: "16", memory: "32Gi", microvms: "20" });
    // Every view is delivered as: one from three changes ago, then the current one twice.
    const replaying = (inner: ClusterControl): ClusterControl =>
      Object.assign(Object.create(inner) as ClusterControl, {
        watch: (onChange: (v: ClusterView) => void, signal: AbortSignal) => {
          const seen: ClusterView[] = [];
          return inner.watch((v) => {
            seen.push(structuredClone(v));
            onChange(structuredClone(seen[Math.max(0, seen.length - 4)]!));
            onChange(v);
            onChange(structuredClone(v));
          }, signal);
        },
      });
    const pods = await recordPods();
    ctl = startController(kit, {}, replaying);
    const names = Array.from({ length: 6 }, (_, i) => `r-${i}`);
    await Promise.all(names.map((n) => applyVm(kit, n)));
    for (const n of names) await vmPhase(kit, n, "Placed");
    // One more burst of changes after everything settled: status must settle again, and stay.
    await applyVm(kit, "late");
    await vmPhase(kit, "late", "Placed");
    for (const n of [...names, "late"]) {
      const vm = await getVm(kit, n);
      expect(vm.status).toMatchObject({ phase: "Placed", node: "node-a" });
      expect(vm.metadata.finalizers).toEqual(["banger.dev/vm-cleanup"]);
    }
    pods.stop();
    expect(pods.events.filter((e) => e.type === "ADDED")).toHaveLength(7);
    expect(pods.events.filter((e) => e.type === "DELETED")).toEqual([]);
  });
});
