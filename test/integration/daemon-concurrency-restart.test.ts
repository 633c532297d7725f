import { mkdtempSync, readdirSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { REPO, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { FAKE_FC, FAKE_FC_ENV, readCalls } from "../fakes/firecracker/testkit.js";

const skip = netnsSkipReason() ?? built();

interface VmJson {
  name: string;
  ip: string;
  tap: string;
  state: string;
  pid: number;
  dir: string;
}

/**
 * The real daemon, real TAPs/nft/SQLite/disks, and the spec-enforcing fake
 * firecracker as the only fake. Creates use --no-wait: the fake runs no guest.
 */
describe.skipIf(skip)(`daemon: parallel creates, restart reconciliation, leak verifier${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let art: string;
  const verify = () => runIn(d.ns, join(REPO, "verify.sh"), [], { env: { BANGER_CONFIG: d.configPath } });
  const vms = async () => (await d.cli(["--json", "vm", "ls"])).json<{ vms: VmJson[] }>().vms;

  beforeAll(async () => {
    d = await startTestDaemon({ config: { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 4, ssh_timeout_s: 60 }, env: FAKE_FC_ENV });
    art = mkdtempSync(join(tmpdir(), "banger-fcart-"));
    const reg = await d.cli(fakeImageArgs(art, "fake-1"));
    expect(reg.stderr).toBe("");
  });
  afterAll(async () => {
    await d?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it("12 parallel creates get distinct names, IPs, TAPs and CIDs; each VMM saw the full spec-valid sequence", async () => {
    const named = Array.from({ length: 6 }, (_, i) => ["--name", `par-${i}`]);
    const unnamed = Array.from({ length: 6 }, () => [] as string[]);
    const results = await Promise.all(
      [...named, ...unnamed].map((n) => d.cli(["--json", "vm", "create", "--image", "fake-1", "--no-wait", ...n], { timeoutMs: 180_000 })),
    );
    for (const r of results) expect(r.stderr).toBe("");
    const made = results.map((r) => r.json<{ vm: VmJson }>().vm);
    for (const key of ["name", "ip", "tap", "pid"] as const) expect(new Set(made.map((v) => v[key])).size).toBe(12);
    expect(made.every((v) => v.state === "running")).toBe(true);
    const calls = readCalls(join(made[0].dir, "fc.sock.calls.jsonl"));
    expect(calls.every((c) => c.status === 204 || c.method === "GET")).toBe(true);
    expect(calls.filter((c) => c.method === "PUT").map((c) => c.path)).toEqual([
      "/logger",
      "/machine-config",
      "/boot-source",
      "/drives/rootfs",
      "/drives/work",
      "/network-interfaces/eth0",
      "/vsock",
      "/actions",
    ]);
    expect((await verify()).stdout).toMatch(/no leaks/);
  });

  it("adopts running VMMs after kill -9 of the daemon, marks dead ones stopped", async () => {
    const before = await vms();
    await d.crash();
    const victim = before.find((v) => v.name === "par-1")!;
    process.kill(victim.pid, "SIGKILL"); // dies while the daemon is away
    await d.start();
    const after = await vms();
    expect(after.find((v) => v.name === "par-1")?.state).toBe("stopped");
    for (const v of after.filter((x) => x.name !== "par-1")) {
      expect(v.state).toBe("running");
      expect(v.pid).toBe(before.find((b) => b.name === v.name)!.pid);
    }
    const stop = await d.cli(["vm", "stop", "par-2"], { timeoutMs: 60_000 });
    expect(stop.stderr).toBe("");
    expect((await vms()).find((v) => v.name === "par-2")?.state).toBe("stopped");
    expect((await verify()).stdout).toMatch(/no leaks/);
  });

  it("a create interrupted by the daemon's death leaves nothing after the restart", async () => {
    const pending = d.cli(["vm", "create", "--image", "fake-1", "--name", "interrupted"], { timeoutMs: 120_000 });
    // The fake runs no guest, so this create sits in wait-ssh: kill the daemon there.
    for (let i = 0; i < 200; i++) {
      const ev = await d.cli(["--json", "vm", "events", "interrupted"]);
      if (ev.code === 0 && ev.json<{ events: { stage: string }[] }>().events.some((e) => e.stage === "start")) break;
      await sleep(100);
    }
    const dir = (await vms()).find((v) => v.name === "interrupted")!.dir;
    await d.crash();
    expect((await pending).code).not.toBe(0);
    expect(existsSync(dir)).toBe(true);
    await d.start();
    expect((await vms()).map((v) => v.name)).not.toContain("interrupted");
    expect(existsSync(dir)).toBe(false);
    expect((await verify()).stdout).toMatch(/no leaks/);
  });

  it("verify.sh reports leaks it finds, then removal of every VM leaves the host clean", async () => {
    await d.ns.exec("ip", ["tuntap", "add", "dev", "bt-orphan", "mode", "tap"]);
    const dirty = await verify();
    expect(dirty.code).toBe(1);
    expect(dirty.stdout).toMatch(/LEAK\s+tap\s+bt-orphan/);
    await d.ns.exec("ip", ["link", "del", "bt-orphan"]);
    for (const v of await vms()) expect((await d.cli(["vm", "rm", v.name, "--force"], { timeoutMs: 60_000 })).stderr).toBe("");
    expect(readdirSync(join(d.stateDir, "vms"))).toEqual([]);
    const clean = await verify();
    expect(clean.stdout).toMatch(/no leaks/);
    expect(clean.code).toBe(0);
  });
});
