import { spawn } from "node:child_process";
import { mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import type { Command } from "commander";
import { BangerError } from "../../domain/errors.js";
import { socketLive } from "../../daemon/lock.js";
import type { CliContext } from "../context.js";
import { keyValues } from "../output.js";

const START_TIMEOUT_MS = 20_000;
// Set by the bundler (scripts/bundle.mjs): there bangerd is a sibling file, not a module two levels up.
declare const BANGER_BUNDLED: boolean | undefined;
const DAEMON_MAIN = fileURLToPath(new URL(typeof BANGER_BUNDLED === "boolean" ? "./bangerd.js" : "../../daemon/main.js", import.meta.url));

/** Node flags for bangerd, as in the Makefile's BANGERD_NODE_FLAGS and bin/bangerd.js. */
const DAEMON_NODE_FLAGS = ["--max-semi-space-size=1", "--no-opt", "--no-maglev", "--no-sparkplug", "--optimize-for-size"];

interface VersionInfo {
  version: string;
  pid: number;
  vmm: string;
  stateDir: string;
}

function daemonArgs(ctx: CliContext): string[] {
  const args = [...DAEMON_NODE_FLAGS, DAEMON_MAIN];
  if (ctx.opts.config) args.push("--config", ctx.opts.config);
  if (ctx.opts.socket) args.push("--socket", ctx.opts.socket);
  return args;
}

async function start(ctx: CliContext, foreground: boolean): Promise<void> {
  const cfg = await ctx.cfg();
  if (foreground) {
    const { runDaemon } = await import("../../daemon/run.js");
    await runDaemon(cfg);
    await new Promise(() => undefined); // serve until a signal ends the process
  }
  if (await socketLive(cfg.paths.socket)) {
    const v = await ctx.client().call<VersionInfo>("GET", "/version");
    ctx.out(`bangerd already running (pid ${v.pid}, socket ${cfg.paths.socket})`, { running: true, already: true, ...v });
    return;
  }
  mkdirSync(cfg.paths.stateDir, { recursive: true });
  const errLog = join(cfg.paths.stateDir, "bangerd.stderr");
  const fd = openSync(errLog, "w");
  const child = spawn(process.execPath, daemonArgs(ctx), { detached: true, stdio: ["ignore", fd, fd] });
  let exited: number | null | undefined;
  child.on("exit", (code) => {
    exited = code;
  });
  child.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      const tail = readFileSync(errLog, "utf8")
        .trim()
        .split("\n")
        .filter((l) => !l.startsWith("{"))
        .slice(-5)
        .join("\n");
      throw new BangerError("DAEMON_UNREACHABLE", `bangerd exited during start (code ${exited}):\n${tail}`, {
        hint: `full output in ${errLog} and ${cfg.paths.logFile}`,
      });
    }
    if (await socketLive(cfg.paths.socket, 300)) {
      ctx.out(`bangerd started (pid ${child.pid}, socket ${cfg.paths.socket}, log ${cfg.paths.logFile})`, {
        running: true,
        pid: child.pid,
        socket: cfg.paths.socket,
      });
      return;
    }
    await sleep(100);
  }
  throw new BangerError("TIMEOUT", `bangerd did not open ${cfg.paths.socket} within ${START_TIMEOUT_MS / 1000} s`, { hint: `see ${cfg.paths.logFile}` });
}

async function stop(ctx: CliContext): Promise<void> {
  const socket = await ctx.socket();
  if (!(await socketLive(socket))) {
    ctx.out(`bangerd is not running (socket ${socket})`, { running: false });
    return;
  }
  await ctx.client().call("POST", "/shutdown");
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (!(await socketLive(socket, 300))) {
      ctx.out("bangerd stopped (running VMs keep running and are adopted at the next start)", { running: false, stopped: true });
      return;
    }
    await sleep(100);
  }
  throw new BangerError("TIMEOUT", "bangerd did not stop within 15 s", { hint: "check its log; SIGTERM its pid as a last resort" });
}

async function status(ctx: CliContext): Promise<void> {
  const socket = await ctx.socket();
  try {
    const v = await ctx.client().call<VersionInfo>("GET", "/version");
    ctx.out(
      keyValues([
        ["status", "running"],
        ["pid", v.pid],
        ["version", v.version],
        ["vmm", v.vmm],
        ["socket", socket],
        ["state dir", v.stateDir],
      ]),
      { running: true, socket, ...v },
    );
  } catch (e) {
    if ((e as BangerError).code !== "DAEMON_UNREACHABLE") throw e;
    ctx.out(`bangerd is not running (socket ${socket}): start it with \`banger daemon start\``, { running: false, socket });
    process.exitCode = 1;
  }
}

export function registerDaemon(program: Command, ctx: CliContext): void {
  const d = program.command("daemon").description("start, stop or inspect bangerd");
  d.command("start")
    .description("start bangerd in the background (or --foreground)")
    .option("--foreground", "run in this process, logging to stderr")
    .action((o: { foreground?: boolean }) => start(ctx, Boolean(o.foreground)));
  d.command("stop")
    .description("stop bangerd; VMs keep running")
    .action(() => stop(ctx));
  d.command("status")
    .description("is bangerd running, and where")
    .action(() => status(ctx));
}
