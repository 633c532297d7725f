import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { processAlive, waitForExit } from "../../src/adapters/exec/proc.js";
import { ExecRunner } from "../../src/adapters/exec/runner.js";
import { spawnUntilReady } from "../../src/adapters/exec/spawn.js";
import { BangerError } from "../../src/domain/errors.js";

const dir = mkdtempSync(join(tmpdir(), "banger-runner-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const runner = new ExecRunner();

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

/** Session id: field 6 of /proc/<pid>/stat. */
function sessionOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
}

describe("ExecRunner.run", () => {
  it("returns output, feeds input, and turns a non-zero exit into COMMAND_FAILED unless allowed", async () => {
    expect(await runner.run("sh", ["-c", "cat; echo err >&2"], { input: "hi" })).toEqual({ code: 0, stdout: "hi", stderr: "err\n" });
    expect(await caught(runner.run("sh", ["-c", "echo boom >&2; exit 3"]))).toMatchObject({
      code: "COMMAND_FAILED",
      message: expect.stringMatching(/exited 3: boom/),
    });
    expect((await runner.run("sh", ["-c", "exit 3"], { allowFailure: true })).code).toBe(3);
  });

  it("kills the child at the timeout (TIMEOUT) and names a missing binary (COMMAND_FAILED with a hint)", async () => {
    const t0 = Date.now();
    expect(await caught(runner.run("sleep", ["5"], { timeoutMs: 100 }))).toMatchObject({ code: "TIMEOUT" });
    expect(Date.now() - t0).toBeLessThan(2_000);
    const e = await caught(runner.run("/nonexistent/tool", []));
    expect(e).toMatchObject({
      code: "COMMAND_FAILED",
      message: expect.stringMatching(/^cannot run \/nonexistent\/tool: .*ENOENT/),
      hint: expect.stringMatching(/PATH/),
    });
  });

  it("an abort kills the child and rejects with the signal's reason", async () => {
    const ac = new AbortController();
    const reason = new BangerError("CANCELLED", "client went away");
    const p = runner.run("sleep", ["5"], { timeoutMs: 10_000, signal: ac.signal });
    setTimeout(() => ac.abort(reason), 50);
    const t0 = Date.now();
    expect(await caught(p)).toBe(reason);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(await caught(runner.run("true", [], { signal: ac.signal }))).toBe(reason);
  });
});

describe("ExecRunner.spawnDetached", () => {
  it("starts the process in its own session with stdout and stderr on one file, and reports its exit", async () => {
    const out = join(dir, "detached.log");
    writeFileSync(out, "earlier\n");
    const p = runner.spawnDetached("sh", ["-c", "echo out; echo err >&2; sleep 0.3; exit 4"], { output: out, append: true });
    expect(p.pid).toBeGreaterThan(0);
    expect(sessionOf(p.pid!)).toBe(p.pid);
    expect(p.end()).toBeUndefined();
    expect(await p.ended).toMatchObject({ kind: "exited", code: 4, detail: "exited with code 4" });
    expect(p.end()).toMatchObject({ kind: "exited" });
    expect(readFileSync(out, "utf8")).toBe("earlier\nout\nerr\n");
    runner.spawnDetached("true", [], { output: out, append: false });
    await new Promise((r) => setTimeout(r, 100));
    expect(readFileSync(out, "utf8")).toBe("");
  });

  it("hands inherited descriptors over as fd 3 onwards (the QEMU restore reads its state file so)", async () => {
    const state = join(dir, "state.bin");
    writeFileSync(state, "migration stream");
    const fd = openSync(state, "r");
    const out = join(dir, "fd3.log");
    try {
      const p = runner.spawnDetached("sh", ["-c", "cat <&3"], { output: out, append: false, inheritFds: [fd] });
      expect(await p.ended).toMatchObject({ kind: "exited", code: 0 });
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(out, "utf8")).toBe("migration stream");
  });

  it("a binary that cannot start has no pid and ends with spawn-error", async () => {
    const p = runner.spawnDetached("/nonexistent/vmm", [], { output: join(dir, "none.log"), append: true });
    expect(p.pid).toBeUndefined();
    expect(await p.ended).toMatchObject({ kind: "spawn-error", error: { code: "ENOENT" }, detail: expect.stringMatching(/^cannot run \/nonexistent\/vmm/) });
  });
});

describe("spawnUntilReady", () => {
  const failed = (message: string) => new BangerError("VMM_FAILED", message);
  const base = { output: join(dir, "vmm.log"), append: false, what: "vmm", socket: "control socket", pollMs: 10, failed };

  it("returns pid and start time once ready() answers; the process keeps running", async () => {
    const flag = join(dir, "ready-flag");
    const r = await spawnUntilReady(runner, {
      ...base,
      cmd: "sh",
      args: ["-c", `sleep 0.2; touch ${flag}; exec sleep 30`],
      timeoutMs: 5_000,
      ready: async () => {
        if (!existsSync(flag)) throw new Error("not yet");
      },
    });
    expect(processAlive(r.pid, r.pidStart)).toBe(true);
    process.kill(r.pid, "SIGKILL");
    expect(await waitForExit(r.pid, r.pidStart, 5_000)).toBe(true);
  });

  it("fails when the process exits first, or cannot start", async () => {
    const notYet = async () => {
      throw new Error("not yet");
    };
    expect(await caught(spawnUntilReady(runner, { ...base, cmd: "sh", args: ["-c", "exit 7"], timeoutMs: 5_000, ready: notYet }))).toMatchObject({
      code: "VMM_FAILED",
      message: "vmm exited with code 7 before its control socket answered",
    });
    expect(await caught(spawnUntilReady(runner, { ...base, cmd: "/nonexistent/vmm", args: [], timeoutMs: 5_000, ready: notYet }))).toMatchObject({
      code: "VMM_FAILED",
      message: expect.stringMatching(/^cannot run \/nonexistent\/vmm/),
    });
  });

  it("terminates the process at the deadline, and on abort (throwing the reason)", async () => {
    const pidFile = join(dir, "pid");
    const args = ["-c", `echo $$ > ${pidFile}; exec sleep 30`];
    const notYet = async () => {
      throw new Error("still booting");
    };
    expect(await caught(spawnUntilReady(runner, { ...base, cmd: "sh", args, timeoutMs: 200, ready: notYet }))).toMatchObject({
      code: "VMM_FAILED",
      message: "vmm control socket did not answer within 200 ms (still booting)",
    });
    expect(processAlive(Number(readFileSync(pidFile, "utf8")))).toBe(false);

    const ac = new AbortController();
    const reason = new BangerError("CANCELLED", "op_timeout_s");
    setTimeout(() => ac.abort(reason), 150);
    expect(await caught(spawnUntilReady(runner, { ...base, cmd: "sh", args, timeoutMs: 10_000, ready: notYet, signal: ac.signal }))).toBe(reason);
    expect(processAlive(Number(readFileSync(pidFile, "utf8")))).toBe(false);
  });
});
