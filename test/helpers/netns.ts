import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { ExecRunner } from "../../src/adapters/exec/runner.js";
import type { Runner, RunOptions, RunResult } from "../../src/ports/runner.js";

/**
 * Network namespaces for tests. Everything networked runs inside namespaces
 * created here; the root namespace only sees `ip netns add/del`. Each
 * namespace is registered so it is deleted even when a test fails or the
 * worker exits early.
 */

const host = new ExecRunner();
const CMD_TIMEOUT_MS = 15_000;

export interface Netns {
  name: string;
  /** A Runner whose commands run inside this namespace. */
  runner: Runner;
  exec(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  destroy(): Promise<void>;
}

const live = new Map<string, Netns>();

class NetnsRunner implements Runner {
  constructor(private readonly ns: string) {}
  run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return host.run("ip", ["netns", "exec", this.ns, cmd, ...args], { timeoutMs: CMD_TIMEOUT_MS, ...opts });
  }
}

function killNsProcesses(name: string): void {
  const res = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8", timeout: CMD_TIMEOUT_MS });
  for (const pid of (res.stdout ?? "").split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
}

function deleteNsSync(name: string): void {
  killNsProcesses(name);
  spawnSync("ip", ["netns", "del", name], { timeout: CMD_TIMEOUT_MS });
}

process.on("exit", () => {
  for (const name of live.keys()) deleteNsSync(name);
});

export async function createNetns(prefix: string): Promise<Netns> {
  const tag = prefix.replace(/[^a-z0-9]/gi, "").slice(0, 8);
  const name = `banger-t-${tag}-${randomBytes(4).toString("hex")}`;
  await host.run("ip", ["netns", "add", name], { timeoutMs: CMD_TIMEOUT_MS });
  const runner = new NetnsRunner(name);
  const ns: Netns = {
    name,
    runner,
    exec: (cmd, args, opts) => runner.run(cmd, args, opts),
    async destroy() {
      if (!live.delete(name)) return;
      killNsProcesses(name);
      await host.run("ip", ["netns", "del", name], { timeoutMs: CMD_TIMEOUT_MS, allowFailure: true });
    },
  };
  live.set(name, ns);
  try {
    await runner.run("ip", ["link", "set", "lo", "up"]);
  } catch (e) {
    await ns.destroy();
    throw e;
  }
  return ns;
}

/** Delete every namespace this process created and has not yet destroyed. */
export async function destroyAllNetns(): Promise<void> {
  for (const ns of [...live.values()]) await ns.destroy();
}

export interface HttpServer {
  url: string;
  /** Peer address of every request served so far, in order. */
  peers(): Promise<string[]>;
  stop(): Promise<void>;
}

// Prints one line per request so the test reads peers from stdout; the
// server lives in another namespace, so the test cannot simply query it.
const SERVER_JS = `
const http = require("node:http");
const port = Number(process.argv[1]);
const srv = http.createServer((req, res) => {
  const peer = req.socket.remoteAddress.replace(/^::ffff:/, "");
  process.stdout.write("PEER " + peer + "\\n");
  res.end(peer);
});
srv.listen(port, "0.0.0.0", () => process.stdout.write("LISTENING\\n"));
`;

/** A tiny HTTP server inside `ns` that answers every request with the caller's address. */
export async function startHttpServer(ns: Netns, port: number, address: string): Promise<HttpServer> {
  const child: ChildProcess = spawn("ip", ["netns", "exec", ns.name, "node", "-e", SERVER_JS, String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const seen: string[] = [];
  let out = "";
  let err = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`HTTP server in ${ns.name} did not start within 10 s: ${err}`));
    }, 10_000);
    child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      let nl: number;
      while ((nl = out.indexOf("\n")) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line === "LISTENING") {
          clearTimeout(timer);
          resolve();
        } else if (line.startsWith("PEER ")) seen.push(line.slice(5));
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`HTTP server in ${ns.name} exited with ${code}: ${err}`));
    });
  });
  return {
    url: `http://${address}:${port}/`,
    peers: async () => [...seen],
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGKILL");
      }),
  };
}

export interface HttpResult {
  ok: boolean;
  body: string;
  error?: string;
}

const CLIENT_JS = `
const http = require("node:http");
const [url, ms] = process.argv.slice(1);
const req = http.get(url, { timeout: Number(ms) }, (res) => {
  let body = "";
  res.on("data", (d) => (body += d));
  res.on("end", () => { process.stdout.write(body); process.exit(0); });
});
req.on("timeout", () => req.destroy(new Error("connect timeout")));
req.on("error", (e) => { process.stderr.write(e.message); process.exit(2); });
`;

/** One HTTP GET from inside `ns`. A failure is a result, not an exception: tests assert on it. */
export async function httpGetFrom(ns: Netns, url: string, timeoutMs = 2_000): Promise<HttpResult> {
  const res = await ns.exec("node", ["-e", CLIENT_JS, url, String(timeoutMs)], {
    allowFailure: true,
    timeoutMs: timeoutMs + 10_000,
  });
  return res.code === 0 ? { ok: true, body: res.stdout } : { ok: false, body: "", error: res.stderr.trim() };
}

export interface Upstream {
  ns: Netns;
  /** The upstream's own address (the "internet" server address). */
  address: string;
  /** Address of the VM namespace on the upstream link; what masqueraded traffic comes from. */
  vmAddress: string;
  /** Interface name in the VM namespace that carries the default route. */
  vmIfname: string;
  startHttpServer(port: number): Promise<HttpServer>;
  /** Let the upstream route `subnet` back to the VM namespace, so un-NATed traffic could flow if allowed. */
  routeBack(subnet: string): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * A second namespace acting as the internet: a veth pair between it and the
 * VM namespace, 198.51.100.1 (upstream) / 198.51.100.2 (VM side), and a
 * default route in the VM namespace so uplink detection finds `uplink0`.
 */
export async function createUpstream(vmNs: Netns): Promise<Upstream> {
  const up = await createNetns("up");
  const address = "198.51.100.1";
  const vmAddress = "198.51.100.2";
  const vmIfname = "uplink0";
  try {
    // Created inside the VM namespace with the peer placed straight into the upstream one.
    await vmNs.exec("ip", ["link", "add", vmIfname, "type", "veth", "peer", "name", "wan0", "netns", up.name]);
    await up.exec("ip", ["addr", "add", `${address}/24`, "dev", "wan0"]);
    await up.exec("ip", ["link", "set", "wan0", "up"]);
    await vmNs.exec("ip", ["addr", "add", `${vmAddress}/24`, "dev", vmIfname]);
    await vmNs.exec("ip", ["link", "set", vmIfname, "up"]);
    await vmNs.exec("ip", ["route", "add", "default", "via", address]);
  } catch (e) {
    await up.destroy();
    throw e;
  }
  return {
    ns: up,
    address,
    vmAddress,
    vmIfname,
    startHttpServer: (port) => startHttpServer(up, port, address),
    routeBack: async (subnet) => {
      await up.exec("ip", ["route", "replace", subnet, "via", vmAddress]);
    },
    destroy: () => up.destroy(),
  };
}

/**
 * A namespace standing in for a guest: a veth whose host end is enslaved to
 * `bridge` in `hostNs`, with `ip/prefix` on eth0 and a default route via `gateway`.
 */
export async function createVethGuest(
  hostNs: Netns,
  opts: { bridge: string; ip: string; prefix: number; gateway: string; hostIfname: string },
): Promise<Netns> {
  const guest = await createNetns("guest");
  try {
    await hostNs.exec("ip", ["link", "add", opts.hostIfname, "type", "veth", "peer", "name", "eth0", "netns", guest.name]);
    await hostNs.exec("ip", ["link", "set", "dev", opts.hostIfname, "master", opts.bridge, "up"]);
    await guest.exec("ip", ["addr", "add", `${opts.ip}/${opts.prefix}`, "dev", "eth0"]);
    await guest.exec("ip", ["link", "set", "eth0", "up"]);
    await guest.exec("ip", ["route", "add", "default", "via", opts.gateway]);
  } catch (e) {
    await guest.destroy();
    throw e;
  }
  return guest;
}

export function rootAvailable(): boolean {
  return process.getuid?.() === 0;
}

let netnsProbe: string | undefined | null = null;

/** Why namespace tests cannot run here, or undefined when they can. Probed once, synchronously, for skipIf. */
export function netnsSkipReason(): string | undefined {
  if (netnsProbe !== null) return netnsProbe;
  netnsProbe = probe();
  return netnsProbe;
}

function probe(): string | undefined {
  if (!rootAvailable()) return "needs root (network namespaces, bridges, nftables)";
  for (const tool of [
    ["ip", "-V"],
    ["nft", "--version"],
  ] as const) {
    const r = spawnSync(tool[0], [tool[1]], { timeout: CMD_TIMEOUT_MS });
    if (r.error || r.status !== 0) return `needs ${tool[0]} on PATH`;
  }
  const name = `banger-t-probe-${randomBytes(4).toString("hex")}`;
  const add = spawnSync("ip", ["netns", "add", name], { encoding: "utf8", timeout: CMD_TIMEOUT_MS });
  if (add.status !== 0) return `cannot create network namespaces: ${(add.stderr ?? "").trim()}`;
  spawnSync("ip", ["netns", "del", name], { timeout: CMD_TIMEOUT_MS });
  return undefined;
}

export function netnsAvailable(): boolean {
  return netnsSkipReason() === undefined;
}
