import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createNetns, type Netns } from "./netns.js";

export const REPO = resolve(import.meta.dirname, "../..");
export const BANGER = join(REPO, "build/bin/banger");
export const BANGERD = join(REPO, "build/bin/bangerd");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json<T = Record<string, unknown>>(): T;
}

export interface TestDaemon {
  ns: Netns;
  dir: string;
  configPath: string;
  socket: string;
  stateDir: string;
  proc?: ChildProcess;
  /** Run the real CLI binary inside the daemon's namespace. */
  cli(args: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<CliResult>;
  start(): Promise<void>;
  /** SIGKILL, as a crash would. */
  crash(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

export function built(): string | undefined {
  return existsSync(BANGER) && existsSync(join(REPO, "build/runtime/cli/main.js")) ? undefined : "needs `make build` first (build/bin/banger missing)";
}

/** TOML for the test daemon: everything under one temp dir, small pool, no web port. */
export function testConfig(dir: string, extra: Record<string, string | number | boolean> = {}): string {
  const values: Record<string, string | number | boolean> = {
    vmm: "qemu",
    state_dir: join(dir, "state"),
    socket: join(dir, "bangerd.sock"),
    bridge: "banger0",
    subnet: "172.30.0.0/24",
    tap_pool_size: 2,
    memory_mib: 512,
    work_disk_gib: 2,
    ...extra,
  };
  return (
    Object.entries(values)
      .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
      .join("\n") + '\n[web]\nlisten = ""\n'
  );
}

export function runIn(
  ns: Netns | undefined,
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CliResult> {
  const argv = ns ? (["ip", ["netns", "exec", ns.name, cmd, ...args]] as const) : ([cmd, args] as const);
  return new Promise((res) => {
    const child = spawn(argv[0], [...argv[1]], { env: { ...process.env, ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    // A command that exits without reading its stdin (e.g. `ip` when killed) must not fail the run with EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      // Say so: a killed command's own stderr is often empty, and an empty failure explains nothing.
      stderr += `\n[runIn: ${cmd} ${args.slice(0, 4).join(" ")} killed after its ${timeoutMs} ms timeout]`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      res({ code: code ?? 1, stdout, stderr, json: <T>() => JSON.parse(stdout) as T });
    });
  });
}

export async function startTestDaemon(
  opts: {
    config?: Record<string, string | number | boolean>;
    env?: NodeJS.ProcessEnv;
    ns?: Netns;
    dir?: string;
    configText?: string;
    /** Command prefix for the daemon (it must exec), e.g. a private mount namespace. */
    wrap?: string[];
  } = {},
): Promise<TestDaemon> {
  const ns = opts.ns ?? (await createNetns("daemon"));
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "banger-it-"));
  // bangerd runs VMMs as vmm_user (banger-vmm, which it creates): like /var/lib, the dirs above its
  // state dir must let others pass, and mkdtemp makes them 0700.
  chmodSync(dir, (statSync(dir).mode & 0o777) | 0o011);
  const configPath = join(dir, "config.toml");
  writeFileSync(configPath, opts.configText ?? testConfig(dir, opts.config));
  const socket = join(dir, "bangerd.sock");
  const env = { BANGER_CONFIG: configPath, XDG_DATA_HOME: join(dir, "data"), ...opts.env };
  const d: TestDaemon = {
    ns,
    dir,
    configPath,
    socket,
    stateDir: join(dir, "state"),
    cli: (args, o = {}) => runIn(ns, BANGER, args, { timeoutMs: o.timeoutMs, env: { ...env, ...o.env } }),
    async start() {
      const argv = [...(opts.wrap ?? []), "ip", "netns", "exec", ns.name, BANGERD];
      const proc = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      // BANGER_TEST_DAEMON_LOG=<file>: keep bangerd's output for a post-mortem (the test dir is removed).
      const keep = process.env.BANGER_TEST_DAEMON_LOG;
      const onOut = (b: Buffer) => {
        out += b.toString();
        if (keep) appendFileSync(keep, b);
      };
      proc.stderr!.on("data", onOut);
      proc.stdout!.on("data", onOut);
      d.proc = proc;
      for (let i = 0; i < 200; i++) {
        if (proc.exitCode !== null) throw new Error(`bangerd exited ${proc.exitCode}:\n${out.slice(-3000)}`);
        const r = await d.cli(["daemon", "status"], { timeoutMs: 10_000 });
        if (r.code === 0) return;
        await sleep(100);
      }
      throw new Error(`bangerd did not come up:\n${out.slice(-3000)}`);
    },
    async crash() {
      d.proc?.kill("SIGKILL");
      // ip netns exec forwards nothing: kill the daemon itself, found through its lock file's pid.
      const lock = join(d.stateDir, "bangerd.lock");
      if (existsSync(lock)) {
        const pid = Number((await import("node:fs")).readFileSync(lock, "utf8").trim());
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      await sleep(200);
    },
    async stop() {
      await d.cli(["daemon", "stop"], { timeoutMs: 30_000 });
      d.proc = undefined;
    },
    async destroy() {
      await d.stop().catch(() => undefined);
      if (!opts.ns) await ns.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await d.start();
  return d;
}
