import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiClient } from "../helpers/api.js";
import { REPO, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { createNetns, createUpstream, type Netns, type Upstream } from "../helpers/netns.js";
import { hostLeftovers, tcpAnswers } from "../helpers/leaks.js";
import { procStatus } from "../helpers/system-user.js";

const skip = built() ?? guestSkipReason();

interface VmJson {
  vm: { name: string; ip: string; state: string; pid?: number; tap?: string; dir: string };
}

describe.skipIf(skip)(`e2e: a real Debian guest under QEMU, bangerd in a netns${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let up: Upstream;
  let d: TestDaemon;
  let vm: VmJson["vm"];

  beforeAll(async () => {
    ns = await createNetns("e2e");
    up = await createUpstream(ns);
    d = await startTestDaemon({ ns, config: { memory_mib: 1024, work_disk_gib: 4 } });
    const img = builtDebianImage()!;
    const reg = await d.cli(registerArgs(img, "debian-e2e-1"), { timeoutMs: 300_000 });
    expect(reg.stderr).toBe("");
    expect((await d.cli(["image", "promote", "debian-e2e-1", "--as", "debian"])).code).toBe(0);
  });

  afterAll(async () => {
    await d?.destroy();
    await up?.destroy();
    await ns?.destroy();
  });

  it("creates alp with NAT and reports every stage", async () => {
    const r = await d.cli(["--json", "vm", "create", "--image", "debian", "--name", "alp", "--nat"], { timeoutMs: 600_000 });
    if (r.code !== 0) console.error(r.stdout, r.stderr);
    expect(r.code).toBe(0);
    const out = r.json<VmJson & { events: { stage: string; outcome: string; durationMs: number }[] }>();
    vm = out.vm;
    expect(vm.state).toBe("running");
    // Secure by default: the root test daemon made banger-vmm itself, and the VMM runs as it.
    const st = procStatus(vm.pid!);
    expect(st.uid[0]).toBeGreaterThan(0);
    expect(st.capEff).toBe("0000000000000000");
    expect(out.events.filter((e) => e.outcome === "ok").map((e) => e.stage)).toEqual([
      "lease-ip",
      "tap",
      "rootfs",
      "work-disk",
      "inject",
      "nat",
      "spawn-vmm",
      "configure",
      "start",
      "wait-ssh",
      "wait-services",
      "total",
    ]);
    console.log(`create stages: ${out.events.map((e) => `${e.stage}=${Math.round(e.durationMs)}ms`).join(" ")}`);
    const show = await d.cli(["vm", "show", "alp"]);
    expect(show.stdout).toMatch(/create time/);
    expect(show.stdout).toMatch(/wait-ssh/);
    // An image without a snapshot boots cold, and says so.
    expect(show.stdout).toMatch(/booted +cold: image debian-e2e-1 has no snapshot/);
  });

  it("answers SSH with its name, its seeded /root disk and opencode running", async () => {
    const r = await d.cli(["vm", "ssh", "alp", "--", "hostname; findmnt -no SOURCE /root; test -f /root/.bashrc && echo seeded; systemctl is-active opencode"]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toEqual(["alp", "/dev/vdb", "seeded", "active"]);
  });

  it("serves opencode on 4096 to the host", async () => {
    expect(await tcpAnswers(ns, vm.ip, 4096)).toBe(true);
  });

  it("reaches the upstream host through NAT, seen as the masqueraded address", async () => {
    const srv = await up.startHttpServer(8080);
    try {
      const r = await d.cli([
        "vm",
        "ssh",
        "alp",
        "--",
        `exec 3<>/dev/tcp/${up.address}/8080 && printf 'GET /from-guest HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3`,
      ]);
      expect(r.stdout).toMatch(/HTTP\/1\.[01] 200/);
      expect(await srv.peers()).toContain(up.vmAddress);
    } finally {
      await srv.stop();
    }
  });

  it("refuses to remove an image a VM uses", async () => {
    const r = await d.cli(["image", "rm", "debian-e2e-1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/used by VM alp|alias debian/);
  });

  it("stops, starts and answers SSH again", async () => {
    const stop = await d.cli(["--json", "vm", "stop", "alp"], { timeoutMs: 120_000 });
    expect(stop.code).toBe(0);
    // QEMU's way: the guest powers itself off (ACPI S5) and qemu exits, no signal needed.
    const ev = (await d.cli(["--json", "vm", "events", "alp"])).json<{ events: { op: string; stage: string; detail?: string; durationMs: number }[] }>().events;
    const vmmStop = ev.filter((e) => e.op === "stop" && e.stage === "vmm-stop").at(-1)!;
    // When the guest does not end it, its shutdown log says which unit held it up.
    const tail = /ended by guest/.test(vmmStop.detail ?? "") ? "" : (await d.cli(["vm", "logs", "alp"])).stdout.slice(-4000);
    expect(vmmStop.detail, `${ev.map((e) => `${e.op}/${e.stage}: ${e.detail ?? ""}`).join("\n")}\n${tail}`).toMatch(/ended by guest/);
    console.log(
      `stop: ${ev
        .filter((e) => e.op === "stop")
        .map((e) => `${e.stage}=${Math.round(e.durationMs)}ms`)
        .join(" ")}`,
    );
    expect((await d.cli(["--json", "vm", "show", "alp"])).json<VmJson>().vm.state).toBe("stopped");
    const start = await d.cli(["vm", "start", "alp"], { timeoutMs: 600_000 });
    expect(start.stderr).toBe("");
    const r = await d.cli(["vm", "ssh", "alp", "--", "hostname"]);
    expect(r.stdout.trim(), r.stderr).toBe("alp");
    const logs = await d.cli(["vm", "logs", "alp"]);
    expect(logs.stdout).toMatch(/Linux version/);
  });

  it("removes the VM and leaves no process, TAP, lease, disk or nft element behind", async () => {
    const pid = (await d.cli(["--json", "vm", "show", "alp"])).json<VmJson>().vm.pid!;
    const rm = await d.cli(["vm", "rm", "alp", "--force"], { timeoutMs: 120_000 });
    expect(rm.code).toBe(0);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(existsSync(vm.dir)).toBe(false);
    expect(readdirSync(join(d.stateDir, "vms"))).toEqual([]);
    const db = new Database(join(d.stateDir, "banger.db"), { readonly: true });
    try {
      expect(db.prepare("select count(*) n from ip_leases").get()).toEqual({ n: 0 });
      expect(db.prepare("select count(*) n from vms").get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
    const left = await hostLeftovers(ns);
    expect(left.natElements).toEqual([]);
    expect(left.nonPoolTaps).toEqual([]);
    expect(left.vmmProcesses).toEqual([]);
  });

  it("a client that disconnects during wait-ssh cancels the create; nothing is left", async () => {
    const api = apiClient(d.socket);
    const client = new AbortController();
    try {
      const pending = api.call("POST", "/vms", { image: "debian", name: "gone", nat: true }, client.signal).catch((e: Error) => e);
      let dir: string | undefined;
      for (let i = 0; i < 600; i++) {
        const r = await api.call<{ vm: { dir: string }; events: { stage: string; outcome: string }[] }>("GET", "/vms/gone");
        if (r.status === 200 && r.body.events.some((e) => e.stage === "start" && e.outcome === "ok")) {
          dir = r.body.vm.dir;
          break;
        }
        await sleep(100);
      }
      expect(dir).toBeDefined(); // the guest is booting, and bangerd is waiting for its SSH
      client.abort();
      expect(await pending).toBeInstanceOf(Error);
      let status = 200;
      for (let i = 0; i < 600 && status !== 404; i++) {
        status = (await api.call("GET", "/vms/gone")).status;
        if (status !== 404) await sleep(100);
      }
      expect(status).toBe(404);
      expect(existsSync(dir!)).toBe(false);
      const left = await hostLeftovers(ns);
      expect(left).toEqual({ natElements: [], nonPoolTaps: [], vmmProcesses: [] });
      const verify = await runIn(ns, join(REPO, "verify.sh"), [], { env: { BANGER_CONFIG: d.configPath } });
      expect(verify.stdout).toMatch(/no leaks/);
      expect(readFileSync(join(d.stateDir, "bangerd.log"), "utf8")).toMatch(/"vm":"gone","stage":"wait-ssh","op":"create".*"code":"CANCELLED"/);
    } finally {
      await api.close();
    }
  });
});
