import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { BANGER, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";

const has = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const skip = netnsSkipReason() ?? built();
const noTmux = has("tmux") ? undefined : "needs tmux (apt-get install tmux)";

/** `banger top` and the completion scripts against a real bangerd with the fake Firecracker. */
describe.skipIf(skip)(`banger top and shell completion${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let art: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    d = await startTestDaemon({ config: { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 1 }, env: FAKE_FC_ENV });
    art = mkdtempSync(join(tmpdir(), "banger-top-"));
    env = { BANGER_CONFIG: d.configPath, XDG_DATA_HOME: join(d.dir, "data") };
    expect((await d.cli(fakeImageArgs(art, "fake-1"))).code).toBe(0);
    expect((await d.cli(["image", "promote", "fake-1", "--as", "fake"])).code).toBe(0);
  });
  afterAll(async () => {
    const ns = d?.ns;
    await d?.destroy();
    await ns?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it.skipIf(noTmux)(`top in a terminal shows a VM created elsewhere, and q leaves with 0${noTmux ? ` (skipped: ${noTmux})` : ""}`, async () => {
    // A private tmux server: nothing of the user's sessions is touched.
    const tmux = (...args: string[]) => execFileSync("tmux", ["-L", `banger-top-${process.pid}`, ...args], { encoding: "utf8" });
    const status = join(art, "top-status");
    const exports = Object.entries(env)
      .map(([k, v]) => `${k}='${v}'`)
      .join(" ");
    tmux(
      "new-session",
      "-d",
      "-s",
      "top",
      "-x",
      "120",
      "-y",
      "30",
      // After top: its exit status, then whether the terminal is back in cooked mode; the pane stays to be read.
      `echo BEFORE-TOP; ip netns exec ${d.ns.name} env ${exports} ${BANGER} top; echo $? > ${status}; stty -a | grep -q -- -icanon && echo TTY-RAW || echo TTY-COOKED; sleep 60`,
    );
    try {
      const screen = () => tmux("capture-pane", "-p", "-t", "top");
      for (let i = 0; i < 100 && !(/ live /.test(screen()) && /bangerd .*pid/.test(screen())); i++) await sleep(100);
      expect(screen()).toMatch(/bangerd \S+ \(pid \d+, firecracker/);
      expect(screen()).toMatch(/pools\s+tap \d+ idle of 1/);
      expect(screen()).not.toContain("top-vm");

      const created = d.cli(["vm", "create", "--image", "fake", "--name", "top-vm", "--no-wait"]);
      const t0 = performance.now();
      let seenAt: number | undefined;
      for (let i = 0; i < 300 && seenAt === undefined; i++) {
        if (screen().includes("top-vm")) seenAt = performance.now();
        else await sleep(20);
      }
      expect(seenAt, "top-vm never appeared").toBeDefined();
      // Recorded, not asserted: the issue's target is 1 s from the create to the screen.
      console.log(`banger top showed top-vm ${(seenAt! - t0).toFixed(0)} ms after the create started`);
      expect((await created).code).toBe(0);
      for (let i = 0; i < 100 && !/top-vm\s+running\s+\d+s\s+\d+\s+\d+M/.test(screen()); i++) await sleep(100);
      expect(screen()).toMatch(/top-vm\s+running\s+\d+s\s+\d+\s+\d+M\s+172\.30\.0\.\d+\s+fake-1/);

      // A resize redraws to the new width.
      tmux("resize-window", "-t", "top", "-x", "60", "-y", "20");
      for (
        let i = 0;
        i < 50 &&
        screen()
          .split("\n")
          .some((l) => l.length > 60);
        i++
      )
        await sleep(100);
      expect(
        Math.max(
          ...screen()
            .split("\n")
            .map((l) => l.length),
        ),
      ).toBeLessThanOrEqual(60);

      tmux("send-keys", "-t", "top", "q");
      for (let i = 0; i < 100 && !existsSync(status); i++) await sleep(100);
      expect(readFileSync(status, "utf8").trim()).toBe("0");
      // The terminal as it was: the alternate screen left (the shell's own lines are back, top's are gone), cursor shown, raw mode off.
      for (let i = 0; i < 50 && !/TTY-/.test(screen()); i++) await sleep(100);
      expect(screen()).toMatch(/BEFORE-TOP[\s\S]*TTY-COOKED/);
      expect(screen()).not.toContain("q quits");
      expect(tmux("display-message", "-p", "-t", "top", "#{cursor_flag}").trim()).toBe("1");
    } finally {
      try {
        tmux("kill-server");
      } catch {
        /* already gone with its only session */
      }
      await d.cli(["vm", "rm", "--force", "top-vm"]);
    }
  });

  it("top without a terminal prints one table, and JSON with --json", async () => {
    expect((await d.cli(["vm", "create", "--image", "fake", "--name", "plain-vm", "--no-wait"])).code).toBe(0);
    const r = await d.cli(["top"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^NAME\s+STATE\s+UPTIME\s+VCPU\s+MEM\s+IP\s+IMAGE\s+OWNER$/m);
    expect(r.stdout).toMatch(/^plain-vm\s+running\s/m);
    expect(r.stdout).not.toContain("\x1b[");
    const j = await d.cli(["--json", "top"]);
    const body = j.json<{ vms: { name: string }[]; host: { memory: { totalMib: number }; pool: unknown } }>();
    expect(body.vms.map((v) => v.name)).toEqual(["plain-vm"]);
    expect(body.host.memory.totalMib).toBeGreaterThan(0);
    expect((await d.cli(["vm", "rm", "--force", "plain-vm"])).code).toBe(0);
  });

  /** Runs the bash completion function for the words given (the last is the one being completed). */
  const bashComplete = (words: string[], extraEnv: Record<string, string> = {}) => {
    const script = [
      "source <(banger completion bash)",
      "complete -p banger",
      `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})`,
      "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))",
      "t0=$(date +%s%N)",
      "_banger",
      'echo "took=$(( ($(date +%s%N) - t0) / 1000000 ))"',
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join("\n");
    return runIn(d.ns, "bash", ["-c", script], { env: { ...env, PATH: `${dirname(BANGER)}:${process.env.PATH}`, ...extraEnv } });
  };
  const words = (out: string) => out.split("\n").slice(2).filter(Boolean);

  it("bash completes commands, flags, and VM and image names from the daemon", async () => {
    expect((await d.cli(["vm", "create", "--image", "fake", "--name", "comp-a", "--no-wait"])).code).toBe(0);
    expect((await d.cli(["vm", "create", "--image", "fake", "--name", "comp-b", "--no-wait"])).code).toBe(0);
    try {
      const top = await bashComplete(["banger", ""]);
      expect(top.stdout.split("\n")[0]).toBe("complete -F _banger banger");
      expect(words(top.stdout)).toEqual(expect.arrayContaining(["vm", "image", "top", "completion", "daemon"]));
      expect(words(top.stdout)).not.toContain("__complete");
      expect(words((await bashComplete(["banger", "vm", "s"])).stdout).sort()).toEqual(["show", "ssh", "start", "stop"]);
      expect(words((await bashComplete(["banger", "vm", "create", "--n"])).stdout).sort()).toEqual(["--name", "--nat", "--no-wait"]);
      const vms = await bashComplete(["banger", "--json", "vm", "ssh", ""]);
      console.log(`bash completion of VM names: ${/took=(\d+)/.exec(vms.stdout)?.[1]} ms`);
      expect(words(vms.stdout).sort()).toEqual(["comp-a", "comp-b"]);
      expect(words((await bashComplete(["banger", "vm", "exec", "comp-"])).stdout).sort()).toEqual(["comp-a", "comp-b"]);
      // The value of --image, and an image argument: names and aliases.
      expect(words((await bashComplete(["banger", "vm", "create", "--image", "f"])).stdout).sort()).toEqual(["fake", "fake-1"]);
      expect(words((await bashComplete(["banger", "image", "show", ""])).stdout).sort()).toEqual(["fake", "fake-1"]);
      // A command's second argument is not a VM.
      expect(words((await bashComplete(["banger", "vm", "exec", "comp-a", ""])).stdout)).toEqual([]);
    } finally {
      await d.cli(["vm", "rm", "--force", "comp-a"]);
      await d.cli(["vm", "rm", "--force", "comp-b"]);
    }
  });

  it("completes no names, at once, with the daemon down or stalled", async () => {
    const down = await bashComplete(["banger", "vm", "ssh", ""], { BANGER_SOCKET: join(art, "nobody.sock") });
    expect(down.code).toBe(0);
    expect(words(down.stdout)).toEqual([]);
    console.log(`with no daemon: ${/took=(\d+)/.exec(down.stdout)?.[1]} ms`);
    // A daemon that accepts and never answers: the lookup's budget ends it.
    const stalled = join(art, "stalled.sock");
    const server = createServer(() => undefined).listen(stalled);
    await new Promise((r) => server.once("listening", r));
    try {
      const r = await bashComplete(["banger", "vm", "ssh", ""], { BANGER_SOCKET: stalled });
      expect(r.code).toBe(0);
      expect(words(r.stdout)).toEqual([]);
      console.log(`with a stalled daemon: ${/took=(\d+)/.exec(r.stdout)?.[1]} ms`);
    } finally {
      server.close();
    }
  });

  it("prints zsh and fish scripts that their shells parse", async () => {
    for (const shell of ["zsh", "fish"]) {
      const r = await d.cli(["completion", shell]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(shell === "zsh" ? "#compdef banger" : `complete -c banger -n "__banger_at 'vm'" -f -a 'ssh'`);
      if (!has(shell)) {
        console.log(`${shell} not installed: its script is not parsed`);
        continue;
      }
      const file = join(art, `banger.${shell}`);
      writeFileSync(file, r.stdout);
      const parsed = spawnSync(shell, ["-n", file], { encoding: "utf8" });
      expect(parsed.status, parsed.stderr).toBe(0);
    }
    const bad = await d.cli(["completion", "tcsh"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Allowed choices are bash, zsh, fish/);
  });
});
