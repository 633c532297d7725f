import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { createNetns, type Netns } from "../helpers/netns.js";
import { hostLeftovers, tcpAnswers } from "../helpers/leaks.js";

const VSOCK = join(REPO, "build/bin/banger-vsock");
const BANGER = join(REPO, "build/bin/banger");
const BLOB_BYTES = 64 * 1024 * 1024;

/** Images built before banger-agent run the sh banger-channel: nothing here applies to them. */
function agentSkipReason(): string | undefined {
  const img = builtDebianImage();
  if (!img) return undefined;
  const r = spawnSync("debugfs", ["-R", "stat /usr/local/sbin/banger-agent", img.rootfs], { encoding: "utf8", timeout: 60_000 });
  return /Inode:/.test(r.stdout) ? undefined : `the Debian image ${img.name} predates banger-agent: rebuild it with \`make image-debian\``;
}

const skip = built() ?? guestSkipReason() ?? agentSkipReason();

interface Streamed {
  code: number;
  bytes: number;
  sha256: string;
  stderr: string;
  ms: number;
}

/** A command whose stdout is binary: hashed as it arrives, never held whole. */
function streamed(ns: Netns, d: TestDaemon, cmd: string, args: string[], timeoutMs: number): Promise<Streamed> {
  const t0 = performance.now();
  const env = { ...process.env, BANGER_CONFIG: d.configPath, XDG_DATA_HOME: join(d.dir, "data") };
  const child = spawn("ip", ["netns", "exec", ns.name, cmd, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const hash = createHash("sha256");
  let bytes = 0;
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    bytes += c.length;
    hash.update(c);
  });
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, bytes, sha256: hash.digest("hex"), stderr, ms: Math.round(performance.now() - t0) });
    }),
  );
}

/**
 * banger-agent in a real Debian guest under QEMU/TCG: its virtio-serial multiplex (this host has
 * no /dev/vhost-vsock) carrying many sessions at once with the guest network down, a large stream
 * beside a busy one, and what happens when the agent dies (the host notices, systemd restarts it).
 */
describe.skipIf(skip)(`e2e: banger-agent in a Debian guest${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let d: TestDaemon;
  let ip: string;
  let daemonLog = "";
  let waitSshDetail: string | undefined;

  beforeAll(async () => {
    ns = await createNetns("agent");
    d = await startTestDaemon({ ns, config: { memory_mib: 1024, work_disk_gib: 2 } });
    d.proc!.stdout!.on("data", (b: Buffer) => (daemonLog += b.toString()));
    d.proc!.stderr!.on("data", (b: Buffer) => (daemonLog += b.toString()));
    const reg = await d.cli(registerArgs(builtDebianImage()!, "debian-agent-1", { services: false }), { timeoutMs: 300_000 });
    expect(reg.stderr).toBe("");
    const r = await d.cli(["--json", "vm", "create", "--image", "debian-agent-1", "--name", "agt"], { timeoutMs: 900_000 });
    if (r.code !== 0) console.error(r.stdout, r.stderr);
    expect(r.code).toBe(0);
    const out = r.json<{ vm: { ip: string }; events: { stage: string; detail?: string }[] }>();
    ip = out.vm.ip;
    waitSshDetail = out.events.find((e) => e.stage === "wait-ssh")?.detail;
  });

  afterAll(async () => {
    await d?.destroy();
    await ns?.destroy();
  });

  it("registration found the agent, and wait-ssh waited for its READY instead of polling", async () => {
    const img = await d.cli(["--json", "image", "show", "debian-agent-1"], { timeoutMs: 60_000 });
    expect(img.json<{ image: { guest: { agent?: boolean } } }>().image.guest.agent).toBe(true);
    expect(waitSshDetail).toMatch(/; pushed by banger-agent in \d+ ms$/);
  });

  it("the image runs banger-agent under systemd, with no banger-channel and no socat", async () => {
    const r = await d.cli(
      [
        "vm",
        "exec",
        "agt",
        "--",
        "sh",
        "-c",
        "systemctl is-active banger-agent; systemctl is-enabled banger-agent; command -v socat banger-channel; stat -c '%a %U' /usr/local/sbin/banger-agent",
      ],
      { timeoutMs: 120_000 },
    );
    expect(r.stdout).toBe("active\nenabled\n755 root\n");
  });

  it("killing the agent fails its open stream at once (CHANNEL_UNAVAILABLE) and systemd restarts it", async () => {
    // A stream held over the channel (banger-vsock without --tcp never uses the IP); sshd's banner proves it is up.
    const held = spawn(VSOCK, ["--socket", d.socket, "-v", "agt", "22"], { stdio: ["pipe", "pipe", "pipe"] });
    let heldErr = "";
    held.stderr.on("data", (c: Buffer) => (heldErr += c.toString()));
    const banner = await new Promise<string>((resolve) => {
      let out = "";
      const timer = setTimeout(() => resolve(out), 60_000);
      held.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("\n")) {
          clearTimeout(timer);
          resolve(out);
        }
      });
    });
    expect(banner, heldErr).toMatch(/^SSH-2\.0-OpenSSH/);
    expect(heldErr).toMatch(/via channel \(virtio-serial\)/);
    const exited = new Promise<number>((resolve) => held.on("exit", () => resolve(performance.now())));

    // The kill goes over the guest's IP: the channel is what dies.
    const kill = await d.cli(["vm", "exec", "-v", "agt", "--", "systemctl", "kill", "--signal=KILL", "banger-agent.service"], { timeoutMs: 120_000 });
    const killed = performance.now();
    expect(kill.code).toBe(0);
    expect(kill.stderr).toMatch(/via ip/);
    const gone = await Promise.race([exited, sleep(60_000).then(() => undefined)]);
    expect(gone, "banger-vsock outlived the agent by a minute").toBeDefined();
    console.log(`[guest-agent] held stream ended ${Math.round(gone! - killed)} ms after the kill returned`);
    expect(daemonLog).toMatch(/CHANNEL_UNAVAILABLE/);

    // systemd's Restart=always brings it back; a new stream over the channel works again.
    let again = "";
    for (let i = 0; i < 30 && !/^SSH-2\.0-/.test(again); i++) {
      const r = await runIn(undefined, VSOCK, ["--socket", d.socket, "agt", "22"], { timeoutMs: 30_000, input: "" });
      again = r.stdout;
      if (!/^SSH-2\.0-/.test(again)) await sleep(1_000);
    }
    expect(again).toMatch(/^SSH-2\.0-OpenSSH/);
    const restarts = await d.cli(["vm", "exec", "agt", "--", "systemctl", "show", "-p", "NRestarts", "--value", "banger-agent"], { timeoutMs: 120_000 });
    expect(Number(restarts.stdout.trim())).toBeGreaterThanOrEqual(1);
  });

  it("with eth0 down, vm exec goes over the channel", async () => {
    const down = await d.cli(["vm", "exec", "agt", "--", "sh", "-c", "nohup sh -c 'sleep 1; ip link set eth0 down' >/dev/null 2>&1 &"], { timeoutMs: 120_000 });
    expect(down.code).toBe(0);
    let reachable = true;
    for (let i = 0; i < 120 && reachable; i++) {
      await sleep(500);
      reachable = await tcpAnswers(ns, ip, 22);
    }
    expect(reachable).toBe(false);
    const exec = await d.cli(["vm", "exec", "-v", "agt", "--", "sh", "-c", "cat /sys/class/net/eth0/operstate; exit 5"], { timeoutMs: 120_000 });
    expect(exec.stdout).toBe("down\n");
    expect(exec.code).toBe(5);
    expect(exec.stderr).toMatch(/via channel \(virtio-serial\)/);
  });

  it("8 concurrent vm exec on one VM: each its own exit code and untangled output", async () => {
    const t0 = performance.now();
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        d.cli(["vm", "exec", "-v", "agt", "--", "sh", "-c", `for j in $(seq 1 300); do echo s${i}-$j; done; echo e${i} >&2; exit ${10 + i}`], {
          timeoutMs: 480_000,
        }),
      ),
    );
    console.log(`[guest-agent] 8 concurrent vm exec took ${Math.round(performance.now() - t0)} ms`);
    runs.forEach((r, i) => {
      expect(r.stderr, `exec ${i}`).toMatch(/via channel \(virtio-serial\)/);
      expect(r.stderr).toContain(`e${i}\n`);
      expect(r.stdout).toBe(Array.from({ length: 300 }, (_, j) => `s${i}-${j + 1}\n`).join(""));
      expect(r.code).toBe(10 + i);
    });
  });

  it("64 MiB through banger-vsock arrive byte-identical while another session is busy", async () => {
    // The blob and a one-shot TCP server for it in the guest: perl-base is in every Debian, socat no longer is.
    const prep = await d.cli(
      [
        "vm",
        "exec",
        "agt",
        "--",
        "sh",
        "-c",
        [
          `head -c ${BLOB_BYTES} /dev/urandom >/tmp/blob || exit 1`,
          "sha256sum /tmp/blob | cut -d' ' -f1",
          `nohup perl -e 'use Socket; socket(S,PF_INET,SOCK_STREAM,0) or die; setsockopt(S,SOL_SOCKET,SO_REUSEADDR,1); ` +
            `bind(S,sockaddr_in(5555,INADDR_LOOPBACK)) or die; listen(S,1); accept(C,S) or die; open(F,"<","/tmp/blob") or die; ` +
            `binmode F; binmode C; while (read(F,$b,65536)) { print C $b or die } close C' </dev/null >/dev/null 2>&1 &`,
          // Until it listens on 127.0.0.1:5555 (0x15B3).
          "for i in $(seq 1 300); do grep -q ':15B3 00000000:0000 0A' /proc/net/tcp && exit 0; sleep 0.1; done; exit 1",
        ].join("\n"),
      ],
      { timeoutMs: 300_000 },
    );
    expect(prep.code, prep.stderr).toBe(0);
    const want = prep.stdout.trim();
    expect(want).toMatch(/^[0-9a-f]{64}$/);

    const busy = d.cli(["vm", "exec", "agt", "--", "sh", "-c", "for i in $(seq 1 40); do echo tick $i; sleep 0.5; done"], { timeoutMs: 600_000 });
    await sleep(3_000);
    const raw = await streamed(ns, d, VSOCK, ["--socket", d.socket, "-v", "agt", "5555"], 600_000);
    const overSsh = await streamed(ns, d, BANGER, ["vm", "exec", "agt", "--", "cat", "/tmp/blob"], 600_000);
    const b = await busy;
    console.log(
      `[guest-agent] 64 MiB over banger-vsock: ${raw.ms} ms (${((BLOB_BYTES / 1048576 / raw.ms) * 1000).toFixed(1)} MiB/s); ` +
        `over vm exec (ssh in the channel): ${overSsh.ms} ms (${((BLOB_BYTES / 1048576 / overSsh.ms) * 1000).toFixed(1)} MiB/s)`,
    );
    expect(raw.stderr).toMatch(/via channel \(virtio-serial\)/);
    expect([raw.bytes, raw.sha256]).toEqual([BLOB_BYTES, want]);
    expect([overSsh.code, overSsh.bytes, overSsh.sha256]).toEqual([0, BLOB_BYTES, want]);
    expect(b.code).toBe(0);
    expect(b.stdout).toBe(Array.from({ length: 40 }, (_, i) => `tick ${i + 1}\n`).join(""));
  });

  it("rm leaves nothing behind", async () => {
    const dir = join(d.stateDir, "vms");
    expect((await d.cli(["vm", "rm", "agt", "--force"], { timeoutMs: 120_000 })).code).toBe(0);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
    expect(await hostLeftovers(ns)).toEqual({ natElements: [], nonPoolTaps: [], vmmProcesses: [] });
    const verify = await runIn(ns, join(REPO, "verify.sh"), [], { env: { BANGER_CONFIG: d.configPath } });
    expect(verify.stdout).toMatch(/no leaks/);
  });
});
