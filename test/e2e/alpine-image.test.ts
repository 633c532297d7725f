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
import { createHash } from "node:crypto";
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
  let createEvents: { stage: string; detail?: string }[] = [];
  const ssh = (cmd: string) => d.cli(["vm", "ssh", "alp", "--", cmd], { timeoutMs: 120_000 });
  const sshTo = async (name: string, cmd: string) => {
    const r = await d.cli(["vm", "ssh", name, "--", cmd], { timeoutMs: 120_000 });
    expect(r.stderr, `${name}: ${cmd}`).toBe("");
    return r.stdout.trim();
  };

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
    const out = r.json<VmJson & { events: { stage: string; durationMs: number; detail?: string }[] }>();
    vm = out.vm;
    createEvents = out.events;
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

  it("runs banger-agent under OpenRC's supervise-daemon; registration found it and readiness was pushed", async () => {
    const r = await ssh("rc-service banger-agent status; stat -c '%a %U' /usr/local/sbin/banger-agent; command -v perl socat || true");
    expect(r.stdout).toMatch(/status: started/);
    expect(r.stdout).toMatch(/^755 root$/m);
    expect(r.stdout).not.toMatch(/perl|socat/);
    const img = (await d.cli(["--json", "image", "show", "alpine"])).json<{ image: { guest: { agent?: boolean } } }>().image;
    expect(img.guest.agent).toBe(true);
    expect(createEvents.find((e) => e.stage === "wait-ssh")?.detail).toMatch(/pushed by banger-agent in \d+ ms/);
    expect(createEvents.find((e) => e.stage === "wait-services")?.detail).toMatch(/opencode:4096 \(password checked\); pushed by banger-agent/);
  });

  describe("from a golden snapshot (re-identity by banger-agent and busybox, no perl)", () => {
    const clones: Record<string, { ip: string; mac: string; id: string; dir: string }> = {};

    it("image snapshot alpine; two creates from it answer SSH as themselves with their own host keys, machine-ids, IPs and opencode passwords", async () => {
      const snap = await d.cli(["--json", "image", "snapshot", "alpine"], { timeoutMs: 900_000 });
      if (snap.code !== 0) console.error(snap.stdout, snap.stderr);
      expect(snap.code).toBe(0);
      const { snapshot } = snap.json<{ snapshot: { id: string; stages: { stage: string; ms: number }[] } }>();
      console.log(`alpine snapshot: ${snapshot.stages.map((s) => `${s.stage}=${s.ms}ms`).join(" ")}`);
      for (const name of ["aa", "ab"]) {
        const r = await d.cli(["--json", "vm", "create", "--image", "alpine", "--name", name, "--nat"], { timeoutMs: 900_000 });
        if (r.code !== 0) console.error(r.stdout, r.stderr);
        expect(r.code).toBe(0);
        const out = r.json<{
          vm: { ip: string; mac: string; id: string; dir: string; bootSource?: string };
          events: { stage: string; outcome?: string; detail?: string; durationMs: number }[];
        }>();
        console.log(`${name}: ${out.events.map((e) => `${e.stage}=${Math.round(e.durationMs)}ms`).join(" ")}`);
        const show = (await d.cli(["--json", "vm", "show", name])).json<{ vm: { bootSource?: string } }>().vm;
        expect(show.bootSource).toBe(`snapshot ${snapshot.id}`);
        expect(out.events.find((e) => e.stage === "reidentify" && e.outcome === "ok")?.detail).toMatch(/via channel$/);
        clones[name] = out.vm;
        expect(await sshTo(name, "hostname; cat /etc/hostname")).toBe(`${name}\n${name}`);
        expect(await sshTo(name, "ip -4 -o addr show dev eth0 | awk '{print $4}'")).toBe(`${out.vm.ip}/24`);
        expect(await sshTo(name, "cat /sys/class/net/eth0/address")).toBe(out.vm.mac);
      }
      const facts = async (name: string) => ({
        hostKey: await sshTo(name, "cat /etc/ssh/ssh_host_ed25519_key.pub"),
        machineId: await sshTo(name, "cat /etc/machine-id"),
        bootId: await sshTo(name, "cat /proc/sys/kernel/random/boot_id"),
        opencodeEnv: await sshTo(name, "cat /etc/banger/opencode.env"),
        clockSkewS: Math.abs(Number(await sshTo(name, "date +%s")) - Date.now() / 1000),
      });
      const a = await facts("aa");
      const b = await facts("ab");
      console.log(JSON.stringify({ aa: { ...a, opencodeEnv: "(hidden)" }, ab: { ...b, opencodeEnv: "(hidden)" } }));
      expect(clones.aa!.ip).not.toBe(clones.ab!.ip);
      expect(a.hostKey).not.toBe(b.hostKey);
      expect(a.machineId).toMatch(/^[0-9a-f]{32}$/);
      expect(a.machineId).not.toBe(b.machineId);
      expect(a.bootId).not.toBe(b.bootId);
      expect(a.opencodeEnv).toMatch(/^OPENCODE_SERVER_PASSWORD=\S+$/m);
      expect(a.opencodeEnv).not.toBe(b.opencodeEnv);
      // banger-agent identity stepped the clock to the host's (generous: a loaded TCG guest drifts).
      expect(a.clockSkewS).toBeLessThan(120);
    });

    it("a clone with eth0 down: vm exec and vm ssh --vsock over the channel, 8 at once, 64 MiB byte-identical", async () => {
      expect(
        (await d.cli(["vm", "exec", "aa", "--", "sh", "-c", "nohup sh -c 'sleep 1; ip link set eth0 down' >/dev/null 2>&1 &"], { timeoutMs: 120_000 })).code,
      ).toBe(0);
      let reachable = true;
      for (let i = 0; i < 120 && reachable; i++) {
        await new Promise((r) => setTimeout(r, 500));
        reachable = await tcpAnswers(ns, clones.aa!.ip, 22);
      }
      expect(reachable).toBe(false);
      const one = await d.cli(["vm", "exec", "-v", "aa", "--", "sh", "-c", "cat /sys/class/net/eth0/operstate; exit 4"], { timeoutMs: 120_000 });
      expect([one.code, one.stdout]).toEqual([4, "down\n"]);
      expect(one.stderr).toMatch(/via channel \(virtio-serial\)/);
      expect((await d.cli(["vm", "ssh", "--vsock", "aa", "--", "hostname"], { timeoutMs: 120_000 })).stdout).toBe("aa\n");
      const runs = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          d.cli(["vm", "exec", "aa", "--", "sh", "-c", `for j in $(seq 1 200); do echo s${i}-$j; done; exit ${20 + i}`], { timeoutMs: 480_000 }),
        ),
      );
      runs.forEach((r, i) => {
        expect(r.stdout, r.stderr).toBe(Array.from({ length: 200 }, (_, j) => `s${i}-${j + 1}\n`).join(""));
        expect(r.code).toBe(20 + i);
      });
      const prep = await d.cli(["vm", "exec", "aa", "--", "sh", "-c", "head -c 67108864 /dev/urandom >/tmp/blob && sha256sum /tmp/blob | cut -d' ' -f1"], {
        timeoutMs: 300_000,
      });
      const want = prep.stdout.trim();
      expect(want).toMatch(/^[0-9a-f]{64}$/);
      const busy = d.cli(["vm", "exec", "aa", "--", "sh", "-c", "for i in $(seq 1 20); do echo tick $i; sleep 0.5; done"], { timeoutMs: 600_000 });
      const blob = await new Promise<{ bytes: number; sha: string }>((resolve) => {
        const child = spawn("ip", ["netns", "exec", ns.name, join(REPO, "build/bin/banger"), "vm", "exec", "aa", "--", "cat", "/tmp/blob"], {
          env: { ...process.env, BANGER_CONFIG: d.configPath, XDG_DATA_HOME: join(d.dir, "data") },
          stdio: ["ignore", "pipe", "ignore"],
        });
        const h = createHash("sha256");
        let bytes = 0;
        child.stdout.on("data", (c: Buffer) => {
          bytes += c.length;
          h.update(c);
        });
        child.on("close", () => resolve({ bytes, sha: h.digest("hex") }));
      });
      expect(blob).toEqual({ bytes: 64 * 1024 * 1024, sha: want });
      expect((await busy).stdout).toBe(Array.from({ length: 20 }, (_, i) => `tick ${i + 1}\n`).join(""));
    });

    it("killing the agent: supervise-daemon restarts it and the channel works again", async () => {
      const kill = await d.cli(["vm", "exec", "-v", "ab", "--", "sh", "-c", "kill -9 $(pidof banger-agent)"], { timeoutMs: 120_000 });
      expect(kill.code).toBe(0);
      expect(kill.stderr).toMatch(/via ip/);
      let banner = "";
      for (let i = 0; i < 30 && !/^SSH-2\.0-/.test(banner); i++) {
        await new Promise((r) => setTimeout(r, 1_000));
        banner = (await runIn(undefined, join(REPO, "build/bin/banger-vsock"), ["--socket", d.socket, "ab", "22"], { timeoutMs: 30_000, input: "" })).stdout;
      }
      expect(banner).toMatch(/^SSH-2\.0-OpenSSH/);
    });

    it("vm rm of the clones leaves nothing of theirs", async () => {
      for (const name of ["aa", "ab"]) expect((await d.cli(["vm", "rm", name, "--force"], { timeoutMs: 120_000 })).code).toBe(0);
      expect(readdirSync(join(d.stateDir, "vms"))).toHaveLength(1);
    });
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
