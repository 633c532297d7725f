import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { createNetns, type Netns } from "../helpers/netns.js";
import { hostLeftovers, tcpAnswers } from "../helpers/leaks.js";

const skip = built() ?? guestSkipReason();
const VSOCK = join(REPO, "build/bin/banger-vsock");

/**
 * One real Debian guest under QEMU (virtio-serial channel: this host has no /dev/vhost-vsock),
 * created without NAT. SSH first goes over its IP; then the guest takes its only interface down
 * and `vm ssh --vsock`, `vm exec` and banger-vsock still reach sshd, through the channel.
 */
describe.skipIf(skip)(`e2e: the guest channel with the guest network down${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let ns: Netns;
  let d: TestDaemon;
  let ip: string;
  let waitSshDetail: string | undefined;

  beforeAll(async () => {
    ns = await createNetns("chan");
    d = await startTestDaemon({ ns, config: { memory_mib: 1024, work_disk_gib: 2 } });
    const reg = await d.cli(registerArgs(builtDebianImage()!, "debian-chan-1", { services: false }), { timeoutMs: 300_000 });
    expect(reg.stderr).toBe("");
    const r = await d.cli(["--json", "vm", "create", "--image", "debian-chan-1", "--name", "chan"], { timeoutMs: 900_000 });
    if (r.code !== 0) console.error(r.stdout, r.stderr);
    expect(r.code).toBe(0);
    const out = r.json<{ vm: { ip: string }; events: { stage: string; detail?: string }[] }>();
    ip = out.vm.ip;
    waitSshDetail = out.events.find((e) => e.stage === "wait-ssh")?.detail;
  });

  it("wait-ssh of a VM without NAT says which path answered", () => {
    // Both work at boot here; which one wins is a race, and either is right.
    expect(waitSshDetail).toMatch(/^via (ip|channel)(; pushed by banger-agent in \d+ ms)?$/);
  });

  afterAll(async () => {
    await d?.destroy();
    await ns?.destroy();
  });

  it("vm exec streams stdout and stderr and passes the exit code through (the IP answers first while it is up)", async () => {
    const r = await d.cli(["vm", "exec", "-v", "chan", "--", "sh", "-c", "echo out; echo err >&2; exit 7"], { timeoutMs: 120_000 });
    expect(r.code).toBe(7);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toContain("err\n");
    expect(r.stderr).toMatch(/banger-vsock: chan:22 via (ip|channel)/);
    // Arguments arrive as given, not re-split by the guest's shell.
    const words = await d.cli(["vm", "exec", "chan", "--", "printf", "[%s]", "a b", "it's"], { timeoutMs: 120_000 });
    expect(words.stdout).toBe("[a b][it's]");
  });

  it("banger-vsock refuses a bad port and a port nothing listens on, with coded errors", async () => {
    const bad = await runIn(undefined, VSOCK, ["--socket", d.socket, "chan", "0"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("port must be 1-65535");
    const closed = await runIn(undefined, VSOCK, ["--socket", d.socket, "chan", "4099"], { timeoutMs: 60_000 });
    expect(closed.code).toBe(1);
    expect(closed.stderr).toContain("nothing listens on guest port 4099");
    expect(closed.stderr).toContain("CHANNEL_FAILED");
    const none = await runIn(undefined, VSOCK, ["--socket", d.socket, "nope", "22"]);
    expect(none.stderr).toContain("VM_NOT_FOUND");
  });

  it("banger-vsock carries sshd's banner over the channel", async () => {
    // stdin stays open: its EOF would end the stream (a half-close) before the banner comes.
    const child = spawn(VSOCK, ["--socket", d.socket, "-v", "chan", "22"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const banner = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve(out), 60_000);
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("\n")) {
          clearTimeout(timer);
          resolve(out);
        }
      });
      child.on("exit", () => resolve(out));
    });
    child.kill();
    expect(banner, `banger-vsock stderr: ${err}`).toMatch(/^SSH-2\.0-OpenSSH/);
    expect(err).toMatch(/via channel \(virtio-serial\)/);
  });

  it("with eth0 down in the guest, vm ssh --vsock and vm exec still work, over the channel", async () => {
    // Fire and forget: the link goes down a second after this SSH session has ended.
    const down = await d.cli(["vm", "exec", "chan", "--", "sh", "-c", "nohup sh -c 'sleep 1; ip link set eth0 down' >/dev/null 2>&1 &"], {
      timeoutMs: 120_000,
    });
    expect(down.code).toBe(0);
    let reachable = true;
    for (let i = 0; i < 120 && reachable; i++) {
      await sleep(500);
      reachable = await tcpAnswers(ns, ip, 22);
    }
    expect(reachable).toBe(false);

    const ssh = await d.cli(["vm", "ssh", "--vsock", "chan", "--", "cat /sys/class/net/eth0/operstate; true"], { timeoutMs: 120_000 });
    expect(ssh.stderr).toBe("");
    expect(ssh.code).toBe(0);
    expect(ssh.stdout.trim()).toBe("down");
    expect((await d.cli(["vm", "ssh", "--vsock", "chan", "--", "true"], { timeoutMs: 120_000 })).code).toBe(0);

    const exec = await d.cli(["vm", "exec", "-v", "chan", "--", "sh", "-c", "hostname; exit 3"], { timeoutMs: 120_000 });
    expect(exec.code).toBe(3);
    expect(exec.stdout).toBe("chan\n");
    expect(exec.stderr).toMatch(/via channel \(virtio-serial\)/);
  });

  it("rm leaves nothing behind", async () => {
    const dir = join(d.stateDir, "vms");
    expect((await d.cli(["vm", "rm", "chan", "--force"], { timeoutMs: 120_000 })).code).toBe(0);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
    expect(await hostLeftovers(ns)).toEqual({ natElements: [], nonPoolTaps: [], vmmProcesses: [] });
    const verify = await runIn(ns, join(REPO, "verify.sh"), [], { env: { BANGER_CONFIG: d.configPath } });
    expect(verify.stdout).toMatch(/no leaks/);
  });
});
