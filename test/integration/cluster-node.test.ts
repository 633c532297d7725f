import { mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { REPO, built, runIn, startTestDaemon, testConfig, type TestDaemon } from "../helpers/daemon.js";
import { createNetns, netnsSkipReason, type Netns } from "../helpers/netns.js";
import { apiClient } from "../helpers/api.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";
import { MVM, mergePatch, nodeBody, placeholderPod, raw, startKit, until, type Kit } from "../fakes/kube-apiserver/testkit.js";
import { bridgeIntoNetns } from "../helpers/kube-bridge.js";
import { manifests } from "../helpers/k8s-world.js";
import { request as httpRequest, type IncomingMessage } from "node:http";

/** A streaming GET on bangerd's socket (SSE); the caller aborts it. */
function fetchUnix(socketPath: string, path: string, signal: AbortSignal): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, path, signal, timeout: 30_000 }, resolve);
    req.on("error", (e) => (signal.aborted ? undefined : reject(e)));
    req.end();
  });
}

const skip = netnsSkipReason() ?? built();
const NODE = "node-a";
const NS_KUBE_PORT = 18443;
const REMOTE_PORT = 7781;

interface VmJson {
  name: string;
  state: string;
  ip?: string;
  externalId?: string;
}

/**
 * The node agent for real: bangerd (fake firecracker, real SQLite/TAPs/nft) in its own network
 * namespace, the strict fake API server in this process reached through a Unix-socket bridge.
 * The test plays kubelet (creates the Node) and the controller (MicroVM with finalizer, placeholder
 * Pod); the fake's scheduler binds the Pod as kube-scheduler would.
 */
describe.skipIf(skip)(`node agent against the fake API server${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let kit: Kit;
  let ns: Netns;
  let d: TestDaemon;
  let dir: string;
  let art: string;
  let bridge: Awaited<ReturnType<typeof bridgeIntoNetns>>;
  let api: ReturnType<typeof apiClient>;

  const config = (waitSsh: boolean) =>
    testConfig(dir, { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 2, ssh_timeout_s: 60 }) +
    `[remote]\nlisten = "0.0.0.0:${REMOTE_PORT}"\nallow_remote = true\ntoken_file = "${join(dir, "remote-token")}"\n` +
    `[cluster]\nenabled = true\nserver = "${bridge.url}"\ntoken_file = "${join(dir, "kube-token")}"\nnode_name = "${NODE}"\nmicrovms = 8\nwait_ssh = ${waitSsh}\nresync_s = 5\n`;
  const vms = async () => (await d.cli(["--json", "vm", "ls"])).json<{ vms: VmJson[] }>().vms;
  const ours = async (uid: string) => (await vms()).filter((v) => v.externalId === `k8s:${uid}`);
  const getMv = async (name: string) =>
    (await kit.custom.getNamespacedCustomObject({ ...MVM, namespace: "default", name }).catch(() => undefined)) as
      { metadata: { uid: string; finalizers?: string[] }; status?: Record<string, any> } | undefined;

  async function apply(name: string): Promise<string> {
    const mv = (await kit.custom.createNamespacedCustomObject({
      ...MVM,
      namespace: "default",
      body: {
        apiVersion: "banger.dev/v1alpha1",
        kind: "MicroVM",
        metadata: { name, finalizers: ["banger.dev/vm-cleanup"] },
        spec: { image: "fake-1", vcpus: 1, memoryMib: 256 },
      },
    })) as { metadata: { name: string; uid: string } };
    const pod = placeholderPod(mv, 1, 256);
    await kit.core.createNamespacedPod({
      namespace: "default",
      body: { ...pod, metadata: { ...pod.metadata, labels: { "banger.dev/microvm": name } } } as never,
    });
    return mv.metadata.uid;
  }

  beforeAll(async () => {
    kit = await startKit({ bookmarkIntervalMs: 500 });
    // The CRD deploy/k8s ships, as `kubectl apply` sends it: the agent's status writes must fit its schema.
    const crd = await raw(kit, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", manifests("microvm-crd.yaml")[0]);
    expect(crd.code).toBe(201);
    // As a kubelet would: the Node exists before the agent starts, and it is the kubelet's.
    await kit.core.createNode({ body: nodeBody(NODE, { cpu: "4", memory: "8Gi", pods: "110" }) as never });
    ns = await createNetns("k8snode");
    dir = mkdtempSync(join(tmpdir(), "banger-k8snode-"));
    chmodSync(dir, 0o711);
    writeFileSync(join(dir, "kube-token"), "test-token\n");
    const url = new URL(kit.server.url);
    bridge = await bridgeIntoNetns(ns, dir, { host: url.hostname, port: Number(url.port) }, NS_KUBE_PORT);
    d = await startTestDaemon({ ns, dir, configText: config(false), env: FAKE_FC_ENV });
    art = mkdtempSync(join(tmpdir(), "banger-k8sart-"));
    expect((await d.cli(fakeImageArgs(art, "fake-1"))).stderr).toBe("");
    api = apiClient(d.socket);
  });
  afterAll(async () => {
    await api?.close();
    await d?.destroy();
    await bridge?.close();
    await ns?.destroy();
    await kit?.server.close();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it("registers the node: label, microvm capacity and allocatable, images annotation; the kubelet's cpu stays", async () => {
    const shown = await d.cli(["--json", "image", "show", "fake-1"]);
    const digest = shown.json<{ image: { digest: string } }>().image.digest;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    // The image was registered after the agent started: registering it re-advertises the node.
    const node = await until("node registered", async () => {
      const n = await kit.core.readNode({ name: NODE });
      const ok = n.metadata?.labels?.["banger.dev/node"] === "true" && n.status?.allocatable?.["banger.dev/microvm"] === "8";
      return ok && n.metadata?.annotations?.["banger.dev/images"] === digest ? n : undefined;
    });
    expect(node.status?.capacity?.["banger.dev/microvm"]).toBe("8");
    expect(node.status?.allocatable?.cpu).toBe("4");
  });

  it("a bound MicroVM gets exactly one VM and status Running with ip, vmName, stages and Ready", async () => {
    const uid = await apply("web-1");
    const mv = await until("web-1 Running", async () => ((await getMv("web-1"))?.status?.phase === "Running" ? getMv("web-1") : undefined), 60_000);
    const mine = await ours(uid);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ name: "default-web-1", state: "running" });
    expect(mv!.status).toMatchObject({ node: NODE, ip: mine[0].ip, vmName: "default-web-1" });
    expect(mv!.status!.stages.map((s: { name: string }) => s.name)).toContain("spawn-vmm");
    expect(mv!.status!.conditions.find((c: { type: string }) => c.type === "Ready")).toMatchObject({ status: "True", reason: "Running" });
    expect(kit.server.problems()).toEqual([]);
  });

  it("placed here after its node was lost, a MicroVM loses the old node's ip and vmName, even when the create here fails", async () => {
    const mv = (await kit.custom.createNamespacedCustomObject({
      ...MVM,
      namespace: "default",
      body: {
        apiVersion: "banger.dev/v1alpha1",
        kind: "MicroVM",
        metadata: { name: "moved-1", finalizers: ["banger.dev/vm-cleanup"] },
        spec: { image: "no-such-image", vcpus: 1, memoryMib: 256 },
      },
    })) as { metadata: { name: string; uid: string } };
    // What its lost node left in the status; the agent here may write before the controller clears it.
    await kit.custom.patchNamespacedCustomObjectStatus(
      { ...MVM, namespace: "default", name: "moved-1", body: { status: { phase: "Placed", node: NODE, ip: "172.30.77.7", vmName: "default-moved-1-old" } } },
      mergePatch,
    );
    const pod = placeholderPod(mv, 1, 256);
    await kit.core.createNamespacedPod({
      namespace: "default",
      body: { ...pod, metadata: { ...pod.metadata, labels: { "banger.dev/microvm": "moved-1" } } } as never,
    });
    const failed = await until("moved-1 Failed", async () => ((await getMv("moved-1"))?.status?.phase === "Failed" ? getMv("moved-1") : undefined), 60_000);
    expect(failed!.status!.conditions.find((c: { type: string }) => c.type === "ImageReady")).toMatchObject({ status: "False", reason: "ImageNotFound" });
    expect(failed!.status!.ip).toBeUndefined();
    expect(failed!.status!.vmName).toBeUndefined();
    await kit.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name: "moved-1" });
    await until("moved-1 gone", async () => (await getMv("moved-1")) === undefined, 60_000);
  });

  it("closed watches (an API server restart) and a daemon restart never make a second VM", async () => {
    const uid = (await getMv("web-1"))!.metadata.uid;
    kit.server.watches.closeAll();
    await d.crash();
    await d.start();
    // Two resync periods: every pass has run at least twice by then.
    await new Promise((r) => setTimeout(r, 11_000));
    expect(await ours(uid)).toHaveLength(1);
    expect((await getMv("web-1"))?.status?.phase).toBe("Running");
  });

  it("kill -9 of bangerd mid-create: after the restart exactly one VM and the status is true", async () => {
    await d.stop();
    // A create that waits for SSH sits in wait-ssh with the fake (it runs no guest): killed there.
    writeFileSync(d.configPath, config(true));
    await d.start();
    const uid = await apply("web-2");
    await until("web-2 creating", async () => (await ours(uid)).find((v) => v.state === "creating"), 60_000);
    await until("web-2 VMM started", async () => {
      const name = (await ours(uid))[0]?.name;
      const ev = name ? await d.cli(["--json", "vm", "events", name]) : undefined;
      return ev?.code === 0 && ev.json<{ events: { stage: string }[] }>().events.some((e) => e.stage === "start");
    });
    await d.crash();
    writeFileSync(d.configPath, config(false));
    await d.start();
    await until("web-2 Running after restart", async () => (await getMv("web-2"))?.status?.phase === "Running", 60_000);
    const mine = await ours(uid);
    expect(mine).toHaveLength(1);
    expect(mine[0].state).toBe("running");
    expect((await getMv("web-2"))?.status?.ip).toBe(mine[0].ip);
  });

  it("deleting a MicroVM removes its VM, then releases the finalizer so the object goes", async () => {
    const uid = (await getMv("web-1"))!.metadata.uid;
    await kit.custom.deleteNamespacedCustomObject({ ...MVM, namespace: "default", name: "web-1" });
    await until("web-1 gone", async () => (await getMv("web-1")) === undefined, 60_000);
    expect(await ours(uid)).toHaveLength(0);
    expect((await vms()).map((v) => v.name)).toEqual(["default-web-2"]);
  });

  it("remote API: PUT by external id twice (concurrently, then again) makes one VM; a spec change is 409; DELETE is idempotent", async () => {
    const body = { image: "fake-1", noWait: true, name: "ext-1" };
    const [a, b] = await Promise.all([api.call("PUT", "/vms/by-external-id/job-1", body), api.call("PUT", "/vms/by-external-id/job-1", body)]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    expect(a.body.vm.id).toBe(b.body.vm.id);
    const again = await api.call("PUT", "/vms/by-external-id/job-1", body);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ created: false, vm: { name: "ext-1", externalId: "job-1" } });
    const other = await api.call("PUT", "/vms/by-external-id/job-1", { ...body, vcpus: 2 });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("EXTERNAL_ID_CONFLICT");
    expect((await vms()).filter((v) => v.externalId === "job-1")).toHaveLength(1);
    expect((await api.call("GET", "/vms/by-external-id/job-1")).body.vm.name).toBe("ext-1");
    expect((await api.call("DELETE", "/vms/by-external-id/job-1")).body).toEqual({ removed: "ext-1" });
    expect((await api.call("DELETE", "/vms/by-external-id/job-1")).body).toEqual({ removed: null });
    expect((await api.call("GET", "/vms/by-external-id/job-1")).status).toBe(404);
    const node = (await api.call("GET", "/node")).body.node;
    expect(node.vms.running).toBe(1);
    expect(node.images.map((i: { name: string }) => i.name)).toEqual(["fake-1"]);
    expect(node.vcpus.allocated).toBe(1);
  });

  it("remote listener: token required, the token works, doctor says it listens beyond loopback", async () => {
    const token = (await runIn(undefined, "cat", [join(dir, "remote-token")])).stdout.trim();
    const curl = (args: string[]) => runIn(ns, "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", ...args]);
    expect((await curl([`http://127.0.0.1:${REMOTE_PORT}/v1/node`])).stdout).toBe("401");
    expect((await curl(["-H", "Authorization: Bearer wrong-token-123456", `http://127.0.0.1:${REMOTE_PORT}/v1/node`])).stdout).toBe("401");
    expect((await curl(["-H", `Authorization: Bearer ${token}`, `http://127.0.0.1:${REMOTE_PORT}/v1/node`])).stdout).toBe("200");
    // Daemon shutdown is the socket's alone.
    expect((await curl(["-X", "POST", "-H", `Authorization: Bearer ${token}`, `http://127.0.0.1:${REMOTE_PORT}/v1/shutdown`])).stdout).toBe("404");
    const doc = (await d.cli(["--json", "doctor"], { timeoutMs: 120_000 })).json<{ checks: { name: string; status: string; detail: string }[] }>();
    expect(doc.checks.find((c) => c.name === "remote")).toMatchObject({ status: "WARN", detail: expect.stringContaining("beyond loopback") });
    expect(doc.checks.find((c) => c.name === "cluster")).toMatchObject({ status: "PASS", detail: expect.stringContaining(`node ${NODE}`) });
  });

  it("a non-loopback remote.listen without allow_remote is refused when the config loads", async () => {
    const cfg = join(dir, "bad.toml");
    writeFileSync(cfg, `vmm = "qemu"\n[remote]\nlisten = "0.0.0.0:${REMOTE_PORT}"\n`);
    const r = await runIn(undefined, join(REPO, "build/bin/banger"), ["config", "show"], { env: { BANGER_CONFIG: cfg } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/remote\.listen 0\.0\.0\.0:7781 is not a loopback address/);
  });

  it("events resume after a token; a token of another boot is 410 EVENTS_EXPIRED", async () => {
    // Read a stream until `until` matches what arrived, then drop the connection.
    const read = async (path: string, until: RegExp): Promise<string> => {
      // Bounded: a stream that never shows what is awaited fails the test instead of hanging it.
      const ac = new AbortController();
      const deadline = setTimeout(() => ac.abort(), 30_000);
      const res = await fetchUnix(d.socket, path, ac.signal);
      let text = "";
      for await (const chunk of res) {
        text += String(chunk);
        if (until.test(text)) break;
      }
      clearTimeout(deadline);
      ac.abort();
      if (!until.test(text)) throw new Error(`stream ${path} ended without ${until}:\n${text.slice(-2000)}`);
      return text;
    };
    const hello = await read("/v1/events", /event: hello\ndata: .*\nid: \S+/);
    const token = /event: hello\ndata: .*\nid: (\S+)/.exec(hello)![1];
    expect((await api.call("PUT", "/vms/by-external-id/job-2", { image: "fake-1", noWait: true, name: "ext-2" })).status).toBe(201);
    // Everything since the token is replayed, without a new hello: the create's row and its stages.
    const replay = await read(`/v1/events?since=${token}`, /"stage":"start"/);
    expect(replay).not.toMatch(/event: hello/);
    expect(replay).toMatch(/event: vm\ndata: .*"name":"ext-2".*\nid: \S+/);
    expect((await api.call("DELETE", "/vms/by-external-id/job-2")).body).toEqual({ removed: "ext-2" });
    const stale = await api.call("GET", "/events?since=00000000.5");
    expect(stale.status).toBe(410);
    expect(stale.body.error.code).toBe("EVENTS_EXPIRED");
  });
});
