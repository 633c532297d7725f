// Helpers for tests that run the fake firecracker: where it and the spec
// live, starting it on a temp socket, raw API calls, and the call record.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Client } from "undici";

export const FAKE_FC = resolve(import.meta.dirname, "firecracker.mjs");
export const REPO_ROOT = resolve(import.meta.dirname, "../../..");
export const SPEC_PATH = process.env.FAKE_FC_SPEC || resolve(REPO_ROOT, "../shared/reference/firecracker-api.yaml");
export const HAVE_SPEC = existsSync(SPEC_PATH);
export const NO_SPEC_REASON = `Firecracker API spec not found at ${SPEC_PATH} (set FAKE_FC_SPEC)`;
/**
 * Environment for the fake in tests that are not about spec conformance: nothing with the spec,
 * FAKE_FC_SPEC=none (built-in routes, no schema validation) in a clone without ../shared.
 * FAKE_FC_SPEC=none in the test's own environment forces the spec-less mode.
 */
export const FAKE_FC_ENV: Record<string, string> = HAVE_SPEC && process.env.FAKE_FC_SPEC !== "none" ? {} : { FAKE_FC_SPEC: "none" };

/**
 * A `firecracker` executable that runs the fake with env set: the driver spawns its binary with
 * the daemon's environment, so per-test settings travel in a wrapper script.
 */
export function fakeFcBin(dir: string, env: Record<string, string> = {}, name = "firecracker-fake"): string {
  const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const exports = Object.entries(env)
    .map(([k, v]) => `export ${k}=${quote(v)}\n`)
    .join("");
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${exports}exec ${quote(process.execPath)} ${quote(FAKE_FC)} "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

export const FAKE_JAILER = resolve(import.meta.dirname, "jailer.mjs");

/**
 * A `jailer` executable running the fake jailer (jailer.mjs): it validates and builds the jail,
 * prints the command to run, and this shell `exec`s it, so the VMM keeps the jailer's pid like the
 * real jailer does. cgroupRoot stands in for /sys/fs/cgroup (records.jsonl goes there).
 */
export function fakeJailerBin(dir: string, cgroupRoot: string, name = "jailer"): string {
  const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const path = join(dir, name);
  writeFileSync(
    path,
    `#!/bin/sh\nexport FAKE_JAILER_CGROUP_ROOT=${quote(cgroupRoot)}\nplan=$(${quote(process.execPath)} ${quote(FAKE_JAILER)} "$@") || exit $?\neval "$plan"\n`,
  );
  chmodSync(path, 0o755);
  return path;
}

export interface JailerRecord {
  id: string;
  argv: string[];
  uid: number;
  gid: number;
  chrootDir: string;
  cgroupVersion: string;
  parentCgroup: string;
  cgroupDir: string | null;
  settings: Record<string, string>;
  limits: Record<string, string>;
  devNodes: "mknod" | "placeholder";
}

export function readJailerRecords(cgroupRoot: string): JailerRecord[] {
  const file = join(cgroupRoot, "records.jsonl");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as JailerRecord);
}

export interface CallRecord {
  method: string;
  path: string;
  body: unknown;
  status: number;
  fault?: string;
}

export function readCalls(file: string): CallRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as CallRecord);
}

/** A scratch dir with small stand-in kernel/initrd/disk files (contents never read by the fake). */
export function scratch(prefix = "fcfake-"): { dir: string; file(name: string, bytes?: number): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    file(name: string, bytes = 1 << 20) {
      const p = join(dir, name);
      writeFileSync(p, "");
      truncateSync(p, bytes);
      return p;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface RunningFake {
  child: ChildProcess;
  sock: string;
  calls: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  request(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; headers: Record<string, unknown> }>;
  stop(): Promise<void>;
}

/** Start the fake with its API socket in dir and wait until GET / answers. */
export async function startFake(dir: string, opts: { id?: string; env?: Record<string, string> } = {}): Promise<RunningFake> {
  const sock = join(dir, "fc.sock");
  const calls = `${sock}.calls.jsonl`;
  let out = "";
  const child = spawn(process.execPath, [FAKE_FC, "--api-sock", sock, "--id", opts.id ?? "test-vm"], {
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on("exit", (code, signal) => res({ code, signal })));

  async function request(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; headers: Record<string, unknown> }> {
    const c = new Client("http://localhost", { socketPath: sock, headersTimeout: 5_000, bodyTimeout: 5_000 });
    try {
      const res = await c.request({
        method: method as "GET",
        path,
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
        headers: body === undefined ? {} : { "content-type": "application/json" },
        signal: AbortSignal.timeout(5_000),
      });
      const text = await res.body.text();
      return { status: res.statusCode, json: text ? JSON.parse(text) : undefined, headers: res.headers };
    } finally {
      await c.close();
    }
  }

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`fake firecracker exited ${child.exitCode}: ${out}`);
    try {
      await request("GET", "/");
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`fake firecracker did not answer within 10 s: ${(e as Error).message}; output: ${out}`);
      }
      await sleep(50);
    }
  }
  // The readiness probe above is not part of what tests assert on.
  rmSync(calls, { force: true });

  return {
    child,
    sock,
    calls,
    output: () => out,
    exited,
    request,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Run the fake to completion (for argv and startup checks). */
export function runFake(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [FAKE_FC, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rej(new Error(`fake firecracker ${args.join(" ")} did not exit within 10 s`));
    }, 10_000);
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("exit", (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}
