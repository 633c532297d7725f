/**
 * Builds the Alpine image with `make image-alpine`'s script from the package source in
 * BANGER_ALPINE_MIRROR, registers and promotes it in a test bangerd (in a netns), and
 * boots `vm create --image alpine --name alp --nat` under QEMU.
 *
 * The kernel: BANGER_ALPINE_KERNEL_FROM when set (an image directory), otherwise the
 * built Debian image is registered in the test daemon and named by --kernel-from.
 * Leave --kernel-from out (BANGER_ALPINE_KERNEL_FROM=linux-virt) when the mirror has linux-virt.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { hostLeftovers, tcpAnswers } from "../helpers/leaks.js";
import { createNetns, createUpstream, type Netns, type Upstream } from "../helpers/netns.js";

const MIRROR = process.env.BANGER_ALPINE_MIRROR;
const KERNEL_FROM = process.env.BANGER_ALPINE_KERNEL_FROM;
const skip = !MIRROR ? "set BANGER_ALPINE_MIRROR to an Alpine mirror (URL or local copy) to build and boot the Alpine image" : (built() ?? guestSkipReason());

interface VmJson {
  vm: { name: string; ip: string; state: string; pid?: number; dir: string };
}

function buildAlpine(d: TestDaemon, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((res) => {
    const child = spawn("bash", [join(REPO, "images/alpine/build.sh"), "all", ...args], {
      env: { ...process.env, BANGER_CONFIG: d.configPath, XDG_DATA_HOME: join(d.dir, "data"), BANGER_NO_REGISTER: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (b) => (out += b));
    child.stderr.on("data", (b) => (out += b));
    const timer = setTimeout(() => child.kill("SIGKILL"), 1_200_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      res({ code: code ?? 1, out });
    });
  });
}

describe.skipIf(skip)(`e2e: the Alpine image built from a mirror and booted under QEMU${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let up: Upstream;
  let d: TestDaemon;
  let vm: VmJson["vm"];
  const ssh = (cmd: string) => d.cli(["vm", "ssh", "alp", "--", cmd], { timeoutMs: 120_000 });

  beforeAll(async () => {
    ns = await createNetns("alpine");
    up = await createUpstream(ns);
    d = await startTestDaemon({ ns, config: { memory_mib: 1024, work_disk_gib: 4 } });
  });

  afterAll(async () => {
    await d?.destroy();
    await up?.destroy();
    await ns?.destroy();
  });

  it("make image-alpine builds, registers and promotes alpine", async () => {
    const args = ["--mirror", MIRROR!];
    if (KERNEL_FROM && KERNEL_FROM !== "linux-virt") args.push("--kernel-from", KERNEL_FROM);
    if (!KERNEL_FROM) {
      const deb = builtDebianImage();
      expect(deb, "no --kernel-from source: build the Debian image (make image-debian) or set BANGER_ALPINE_KERNEL_FROM").toBeDefined();
      expect((await d.cli(registerArgs(deb!, "debian-e2e-k"), { timeoutMs: 600_000 })).code).toBe(0);
      expect((await d.cli(["image", "promote", "debian-e2e-k", "--as", "debian"])).code).toBe(0);
      args.push("--kernel-from", "debian");
    }
    const r = await buildAlpine(d, args);
    console.log(r.out);
    expect(r.code).toBe(0);
    const show = await d.cli(["--json", "image", "show", "alpine"]);
    expect(show.code).toBe(0);
    const img = show.json<{
      image: { name: string; aliases: string[]; bootArgs: string; guest: { os: string; services: { name: string; timeoutMs?: number }[] } };
    }>().image;
    expect(img.aliases).toContain("alpine");
    expect(img.guest.os).toBe("alpine");
    expect(img.bootArgs).toMatch(/rootfstype=ext4/);
    expect(img.guest.services.find((s) => s.name === "opencode")?.timeoutMs).toBe(300_000);
  });

  it("vm create --image alpine --name alp --nat reaches SSH", async () => {
    const r = await d.cli(["--json", "vm", "create", "--image", "alpine", "--name", "alp", "--nat"], { timeoutMs: 900_000 });
    if (r.code !== 0) console.error(r.stdout, r.stderr, (await d.cli(["vm", "logs", "alp"])).stdout.slice(-4000));
    expect(r.code).toBe(0);
    const out = r.json<VmJson & { events: { stage: string; durationMs: number }[] }>();
    vm = out.vm;
    expect(vm.state).toBe("running");
    console.log(`create stages: ${out.events.map((e) => `${e.stage}=${Math.round(e.durationMs)}ms`).join(" ")}`);
  });

  it("runs sshd, networking and opencode under OpenRC, with /root on /dev/vdb", async () => {
    const r = await ssh(
      'cat /etc/alpine-release; hostname; rc-status default; rc-status boot; awk \'$2=="/root"{print "root-on " $1}\' /proc/mounts; test -d /root/.config/opencode && echo seeded',
    );
    console.log(r.stdout);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^3\.19\.4$/m);
    expect(r.stdout).toMatch(/^alp$/m);
    for (const svc of ["sshd", "opencode", "networking"]) expect(r.stdout).toMatch(new RegExp(`^\\s*${svc}\\s+\\[\\s*started`, "m"));
    expect(r.stdout).toMatch(/^root-on \/dev\/vdb$/m);
    expect(r.stdout).toMatch(/^seeded$/m);
  });

  it("serves opencode on 4096 to the host", async () => {
    expect(await tcpAnswers(ns, vm.ip, 4096)).toBe(true);
  });

  it("reaches the upstream host through NAT", async () => {
    const srv = await up.startHttpServer(8080);
    try {
      const r = await ssh(`wget -q -O - http://${up.address}:8080/from-alpine`);
      expect(r.stdout).toBe(up.vmAddress);
      expect(await srv.peers()).toContain(up.vmAddress);
    } finally {
      await srv.stop();
    }
  });

  it("stops (guest poweroff ends qemu) and starts again", async () => {
    const stop = await d.cli(["--json", "vm", "stop", "alp"], { timeoutMs: 180_000 });
    expect(stop.code).toBe(0);
    const ev = (await d.cli(["--json", "vm", "events", "alp"])).json<{ events: { op: string; stage: string; detail?: string }[] }>().events;
    expect(ev.filter((e) => e.op === "stop" && e.stage === "vmm-stop").at(-1)?.detail).toMatch(/ended by guest/);
    const start = await d.cli(["vm", "start", "alp"], { timeoutMs: 900_000 });
    expect(start.stderr).toBe("");
    expect((await ssh("hostname")).stdout.trim()).toBe("alp");
  });

  it("vm rm leaves nothing behind", async () => {
    const pid = (await d.cli(["--json", "vm", "show", "alp"])).json<VmJson>().vm.pid!;
    expect((await d.cli(["vm", "rm", "alp", "--force"], { timeoutMs: 120_000 })).code).toBe(0);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(readdirSync(join(d.stateDir, "vms"))).toEqual([]);
    expect(await hostLeftovers(ns)).toEqual({ natElements: [], nonPoolTaps: [], vmmProcesses: [] });
    const verify = await runIn(ns, join(REPO, "verify.sh"), [], { env: { BANGER_CONFIG: d.configPath } });
    console.log(verify.stdout);
    expect(verify.stdout).toMatch(/no leaks/);
  });
});
