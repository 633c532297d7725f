// `banger --context ... vm create|ls|rm` (the built CLI) against the fake API server, with the
// controller running in-process and the node agent's two writes (status Running, finalizer off)
// done by the test.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Kit, MVM, jsonPatch, until } from "../fakes/kube-apiserver/testkit.js";
import { BANGER, built } from "../helpers/daemon.js";
import { type Running, addNode, getVm, startController, startWorld } from "../helpers/k8s-world.js";

const run = promisify(execFile);
let kit: Kit;
let ctl: Running;
let dir: string;
let env: NodeJS.ProcessEnv;
let agent: NodeJS.Timeout;

/** The node agent's part, as far as the CLI sees it: a placed MicroVM runs; a deleting one is released. */
async function actAsNodeAgent(): Promise<void> {
  const { items } = (await kit.custom.listNamespacedCustomObject({ ...MVM, namespace: "default" })) as { items: any[] };
  for (const vm of items) {
    const at = { ...MVM, namespace: "default", name: vm.metadata.name };
    if (vm.metadata.deletionTimestamp && vm.metadata.finalizers?.length)
      await kit.custom.patchNamespacedCustomObject({ ...at, body: [{ op: "remove", path: "/metadata/finalizers/0" }] }, jsonPatch).catch(() => undefined);
    else if (vm.status?.phase === "Placed" && vm.metadata.name !== "held")
      await kit.custom
        .replaceNamespacedCustomObjectStatus({ ...at, body: { ...vm, status: { ...vm.status, phase: "Running", ip: "172.30.0.9" } } })
        .catch(() => undefined);
  }
}

const banger = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
  run(BANGER, args, { env: { ...env, ...extraEnv }, timeout: 60_000 }).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );

describe.skipIf(built() !== undefined)("banger --context k8s (needs `make build`)", () => {
  beforeAll(async () => {
    kit = await startWorld();
    await addNode(kit, "node-a", { cpu: "8", memory: "16Gi", microvms: "10" });
    ctl = startController(kit);
    dir = mkdtempSync(join(tmpdir(), "banger-cli-k8s-"));
    writeFileSync(join(dir, "kubeconfig"), kit.kc.exportConfig());
    writeFileSync(join(dir, "config.toml"), `[contexts.lab]\nkubeconfig = "${join(dir, "kubeconfig")}"\nnamespace = "default"\n`);
    env = { ...process.env, KUBECONFIG: join(dir, "kubeconfig"), HOME: dir, XDG_CONFIG_HOME: join(dir, "xdg") };
    agent = setInterval(() => void actAsNodeAgent(), 100);
  });
  afterAll(async () => {
    clearInterval(agent);
    await ctl?.stop();
    expect(kit.server.problems()).toEqual([]);
    await kit.server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("creates a MicroVM and waits until its node runs it", async () => {
    const r = await banger([
      "--context",
      "k8s",
      "vm",
      "create",
      "--image",
      "debian",
      "--name",
      "one",
      "--vcpus",
      "2",
      "--memory",
      "512",
      "--nat",
      "-p",
      "8022:22",
    ]);
    expect(r.err).toBe("");
    expect(r.out).toMatch(/^created one \(172\.30\.0\.9\) on node node-a in [\d.]+ s\n$/);
    const vm = await getVm(kit, "one");
    expect(vm.spec).toEqual({ image: "debian", vcpus: 2, memoryMib: 512, nat: true, ports: ["8022:22"] });
  });

  it("lists MicroVMs with phase, node and ip; --json gives the objects", async () => {
    const held = await banger(["--context", "lab", "--config", join(dir, "config.toml"), "vm", "create", "--image", "debian", "--name", "held", "--no-wait"]);
    expect(held.out).toMatch(/^submitted held to lab \(namespace default\)/);
    await until("held placed", async () => (await getVm(kit, "held"))?.status?.phase === "Placed");
    const ls = await banger(["--context", "k8s", "vm", "ls"]);
    const lines = ls.out.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+PHASE\s+NODE\s+IMAGE\s+IP\s+VCPUS\s+MEMORY\s+NAT\s+CREATED$/);
    expect(lines.find((l) => l.startsWith("one "))).toMatch(/^one\s+Running\s+node-a\s+debian\s+172\.30\.0\.9\s+2\s+512M\s+yes\s/);
    expect(lines.find((l) => l.startsWith("held "))).toMatch(/^held\s+Placed\s+node-a\s+debian\s+-\s+2\s+1024M\s+no\s/);
    const json = JSON.parse((await banger(["--json", "--context", "k8s", "vm", "ls"])).out) as { vms: { metadata: { name: string } }[] };
    expect(json.vms.map((v) => v.metadata.name).sort()).toEqual(["held", "one"]);
  });

  it("removes a MicroVM once its node released it, and names bad input", async () => {
    const rm = await banger(["--context", "k8s", "vm", "rm", "one"]);
    expect(rm.out).toBe("removed one\n");
    expect(await getVm(kit, "one")).toBeUndefined();
    const again = await banger(["--json", "--context", "k8s", "vm", "rm", "one"]);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.out).error.code).toBe("VM_NOT_FOUND");
    const dup = await banger(["--json", "--context", "k8s", "vm", "create", "--image", "debian", "--name", "held", "--no-wait"]);
    expect(JSON.parse(dup.out).error.code).toBe("VM_EXISTS");
    const addr = await banger(["--context", "k8s", "vm", "create", "--image", "debian", "-p", "127.0.0.1:80:80", "--no-wait"]);
    expect(addr.code).toBe(1);
    expect(addr.err).toMatch(/^error: -p 127\.0\.0\.1:80:80: a MicroVM's forward is hostport:guestport\nhint: /);
    const big = await banger(["--json", "--context", "k8s", "vm", "create", "--image", "debian", "--vcpus", "65", "--no-wait"]);
    expect(JSON.parse(big.out).error).toMatchObject({ code: "BAD_REQUEST" });
    expect(JSON.parse(big.out).error.message).toMatch(/spec\.vcpus/);
    const nocontext = await banger(["--context", "nope", "vm", "ls"]);
    expect(nocontext.err).toMatch(/^error: no context named nope\n/);
  });
});
