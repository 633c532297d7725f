// spec.ttlSeconds and spec.peers end to end on the control plane: the fake API server with the CRD from
// deploy/k8s and its kube-scheduler stand-in, the banger-k8s controller in this process, and a real bangerd
// node agent (fake Firecracker; real SQLite, TAPs and nft) as node-a in its own network namespace.
// node-b is a Node without an agent: a MicroVM placed there is never run, which is what shows where the
// scheduler would have put one without its peers' pod affinity.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSetElements } from "../../src/adapters/net/nft.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";
import { type Kit, MVM, jsonPatch, mergePatch, until } from "../fakes/kube-apiserver/testkit.js";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { built, startTestDaemon, testConfig, type TestDaemon } from "../helpers/daemon.js";
import { type Running, addNode, applyVm, getVm, startController, startWorld } from "../helpers/k8s-world.js";
import { bridgeIntoNetns } from "../helpers/kube-bridge.js";
import { createNetns, netnsSkipReason, type Netns } from "../helpers/netns.js";

const skip = netnsSkipReason() ?? built();
const NS_KUBE_PORT = 18444;
const SMALL = { image: "fake-1", vcpus: 1, memoryMib: 256 };

interface VmJson {
  name: string;
  state: string;
  tap?: string;
  externalId?: string;
}

describe.skipIf(skip)(`MicroVM ttlSeconds and peers, controller + bangerd node agent${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let kit: Kit;
  let ns: Netns;
  let d: TestDaemon;
  let dir: string;
  let art: string;
  let bridge: Awaited<ReturnType<typeof bridgeIntoNetns>>;
  let ctl: Running | undefined;

  const vms = async () => (await d.cli(["--json", "vm", "ls"])).json<{ vms: VmJson[] }>().vms;
  const ours = async (uid: string) => (await vms()).filter((v) => v.externalId === `k8s:${uid}`);
  const running = (name: string, ms = 60_000) =>
    until(
      `${name} Running`,
      async () => {
        const v = await getVm(kit, name);
        return v?.status?.phase === "Running" ? v : undefined;
      },
      ms,
    );
  const placedOn = (name: string) =>
    until(
      `${name} bound`,
      async () => (await kit.core.readNamespacedPod({ namespace: "default", name: `microvm-${name}` }).catch(() => undefined))?.spec?.nodeName,
    );
  const cordon = (node: string, unschedulable: boolean) => kit.core.patchNode({ name: node, body: { spec: { unschedulable } } }, mergePatch);
  /** The peer pairs nft holds on node-a's bridge, as "tapA . tapB" (the same reading bangerd's doctor uses). */
  const nftPeers = async () => {
    const r = await ns.exec("nft", ["-j", "list", "set", "bridge", "banger", "peers"]);
    expect(r.code).toBe(0);
    return parseSetElements(r.stdout, "peers");
  };
  const tapOf = async (vmName: string) => (await vms()).find((v) => v.name === vmName)?.tap;
  const gone = (name: string) => until(`${name} gone`, async () => (await getVm(kit, name)) === undefined, 60_000);

  beforeAll(async () => {
    kit = await startWorld();
    // As a kubelet would: node-a exists, labelled, before its agent starts.
    await addNode(kit, "node-a", { cpu: "8", memory: "16Gi", microvms: "10" });
    ns = await createNetns("k8sspec");
    dir = mkdtempSync(join(tmpdir(), "banger-k8sspec-"));
    chmodSync(dir, 0o711);
    writeFileSync(join(dir, "kube-token"), "test-token\n");
    const url = new URL(kit.server.url);
    bridge = await bridgeIntoNetns(ns, dir, { host: url.hostname, port: Number(url.port) }, NS_KUBE_PORT);
    const config =
      testConfig(dir, { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 2 }) +
      `[cluster]\nenabled = true\nserver = "${bridge.url}"\ntoken_file = "${join(dir, "kube-token")}"\nnode_name = "node-a"\nmicrovms = 8\nwait_ssh = false\nresync_s = 5\n`;
    d = await startTestDaemon({ ns, dir, configText: config, env: FAKE_FC_ENV });
    art = mkdtempSync(join(tmpdir(), "banger-k8sspec-art-"));
    expect((await d.cli(fakeImageArgs(art, "fake-1"))).stderr).toBe("");
    ctl = startController(kit);
  });
  afterAll(async () => {
    await ctl?.stop();
    await d?.destroy();
    await bridge?.close();
    await ns?.destroy();
    if (kit) {
      expect(kit.server.problems()).toEqual([]);
      await kit.server.close();
    }
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it("ttlSeconds: runningSince is recorded, the MicroVM is deleted after it through the finalizer, and the VM goes", async () => {
    const created = await applyVm(kit, "brief", { ...SMALL, ttlSeconds: 3 });
    const uid = created.metadata.uid as string;
    const mv = await until(
      "runningSince",
      async () => {
        const v = await getVm(kit, "brief");
        return v?.status?.runningSince ? v : undefined;
      },
      60_000,
    );
    expect(mv.status.phase).toBe("Running");
    const ready = mv.status.conditions.find((c: { type: string }) => c.type === "Ready");
    expect(mv.status.runningSince).toBe(ready.lastTransitionTime);
    expect(await ours(uid)).toHaveLength(1);

    await gone("brief");
    expect(await ours(uid)).toEqual([]);
    const line = ctl!.logs.lines.find((l) => l.msg === "time to live is over; deleting the MicroVM" && l.vm === "default/brief");
    expect(line).toMatchObject({ runningSince: mv.status.runningSince, ttlSeconds: 3 });
    // Never early: the deletion was decided at or after runningSince + ttlSeconds (a lower bound, not a timing).
    expect(line.time).toBeGreaterThanOrEqual(Date.parse(mv.status.runningSince) + 3000);
    console.log(`ttl 3 s: deletion decided ${line.time - Date.parse(mv.status.runningSince)} ms after runningSince`);
  });

  it("ttlSeconds survives a controller restart: a new controller deletes from the recorded runningSince", async () => {
    const created = await applyVm(kit, "restarted", { ...SMALL, ttlSeconds: 5 });
    const uid = created.metadata.uid as string;
    const mv = await until(
      "runningSince",
      async () => {
        const v = await getVm(kit, "restarted");
        return v?.status?.runningSince ? v : undefined;
      },
      60_000,
    );
    await ctl!.stop();
    const first = ctl!;
    ctl = undefined;
    expect(first.logs.lines.some((l) => l.vm === "default/restarted" && l.stage === "ttl")).toBe(false);
    // With no controller, nothing ends it: it outlives its time to live.
    const end = Date.parse(mv.status.runningSince) + 5000;
    await sleep(Math.max(0, end - Date.now()) + 1000);
    expect((await getVm(kit, "restarted"))?.metadata.deletionTimestamp).toBeUndefined();
    expect(await ours(uid)).toHaveLength(1);

    ctl = startController(kit);
    await gone("restarted");
    expect(await ours(uid)).toEqual([]);
    const line = ctl.logs.lines.find((l) => l.stage === "ttl" && l.vm === "default/restarted");
    expect(line.runningSince).toBe(mv.status.runningSince);
  });

  it("peers are co-located by pod affinity where the scheduler would otherwise spread them, and peered on the bridge", async () => {
    await addNode(kit, "node-b", { cpu: "8", memory: "16Gi", microvms: "10" });
    await cordon("node-b", true);
    await applyVm(kit, "db", SMALL);
    expect(await placedOn("db")).toBe("node-a");
    await cordon("node-b", false);

    // node-b is now the less allocated node: kube-scheduler's least-allocated score sends a free MicroVM there.
    await applyVm(kit, "lone", SMALL);
    expect(await placedOn("lone")).toBe("node-b");
    await applyVm(kit, "app", { ...SMALL, peers: ["db"] });
    expect(await placedOn("app")).toBe("node-a");
    const pod = await kit.core.readNamespacedPod({ namespace: "default", name: "microvm-app" });
    expect(pod.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
      { labelSelector: { matchExpressions: [{ key: "banger.dev/microvm", operator: "In", values: ["app", "db"] }] }, topologyKey: "kubernetes.io/hostname" },
    ]);

    const app = await running("app");
    const db = await running("db");
    const [tapApp, tapDb] = [await tapOf(app.status.vmName), await tapOf(db.status.vmName)];
    expect(tapApp && tapDb).toBeTruthy();
    const pairs = await nftPeers();
    expect(pairs).toContain(`${tapApp} . ${tapDb}`);
    expect(pairs).toContain(`${tapDb} . ${tapApp}`);
  });

  it("either order: a MicroVM naming a peer that does not exist yet runs alone, and is peered when the peer arrives", async () => {
    await cordon("node-b", true);
    await applyVm(kit, "front", { ...SMALL, peers: ["back"] });
    const front = await running("front");
    const tapFront = await tapOf(front.status.vmName);
    expect((await nftPeers()).filter((p) => p.includes(tapFront!))).toEqual([]);
    await cordon("node-b", false);

    // back names nobody; front's spec is enough to hold it on front's node.
    await applyVm(kit, "back", SMALL);
    expect(await placedOn("back")).toBe("node-a");
    const back = await running("back");
    const [tf, tb] = [await tapOf(front.status.vmName), await tapOf(back.status.vmName)];
    await until("front and back peered", async () => (await nftPeers()).includes(`${tf} . ${tb}`));
    expect(await nftPeers()).toContain(`${tb} . ${tf}`);
  });

  it("peers named on running MicroVMs of one node are paired by the agent without re-creating them", async () => {
    await cordon("node-b", true);
    await applyVm(kit, "x1", SMALL);
    await applyVm(kit, "x2", SMALL);
    const [x1, x2] = [await running("x1"), await running("x2")];
    const [t1, t2] = [await tapOf(x1.status.vmName), await tapOf(x2.status.vmName)];
    expect((await nftPeers()).filter((p) => p.includes(t1!))).toEqual([]);
    await kit.custom.patchNamespacedCustomObject(
      { ...MVM, namespace: "default", name: "x1", body: [{ op: "add", path: "/spec/peers", value: ["x2"] }] },
      jsonPatch,
    );
    await until("x1 and x2 peered", async () => (await nftPeers()).includes(`${t1} . ${t2}`));
    // Same VMs: peering an existing VM does not replace it.
    expect(await tapOf(x1.status.vmName)).toBe(t1);
    await cordon("node-b", false);
  });

  it("a peer that cannot join its group's node stays Pending with the scheduler's reason", async () => {
    // node-a (16 GiB) holds db and five more of 256 MiB; node-b holds lone. 15 GiB fits node-b only, which lacks db.
    await applyVm(kit, "app2", { ...SMALL, memoryMib: 15360, peers: ["db"] });
    const mv = await until("app2's scheduler verdict", async () => {
      const v = await getVm(kit, "app2");
      const c = v?.status?.conditions?.find((x: { type: string; reason: string }) => x.type === "Scheduled" && x.reason === "Unschedulable");
      return c ? v : undefined;
    });
    expect(mv.status.phase).toBe("Pending");
    const cond = mv.status.conditions.find((x: { type: string }) => x.type === "Scheduled");
    expect(cond.message).toBe("0/2 nodes are available: 1 Insufficient memory, 1 node(s) didn't match pod affinity rules.");
    expect((await kit.core.readNamespacedPod({ namespace: "default", name: "microvm-app2" })).spec?.nodeName).toBeUndefined();
  });
});
