#!/usr/bin/env node
/**
 * Leak verifier (./verify.sh): lists what banger left on the host that no VM
 * in the store owns. Exit 0 when clean, 1 with the list otherwise. Works with
 * the daemon up or down: it reads the database read-only and inspects the
 * host directly (in the current network namespace).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { ExecRunner } from "../adapters/exec/runner.js";
import { loadConfig } from "../config/load.js";
import { socketLive } from "../daemon/lock.js";
import { parseSetElements } from "../adapters/net/nft.js";

interface Leak {
  kind: string;
  what: string;
}
interface VmRow {
  id: string;
  name: string;
  state: string;
  tap: string | null;
  pid: number | null;
  nat: number;
  ip: string | null;
  role: string | null;
}

/** A running VM, or a paused pool member (role 'pool', state creating): both hold a VMM process and a TAP. */
const holdsVmm = (v: VmRow) => v.state === "running" || (v.role === "pool" && v.state === "creating");

const runner = new ExecRunner();

function vmmProcesses(): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ");
      if (/(^|\/)(qemu-system-\S+|firecracker)(\s|$)|firecracker\.mjs/.test(cmdline)) out.push({ pid: Number(entry), cmdline });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

async function bangerTaps(): Promise<string[]> {
  const r = await runner.run("ip", ["-j", "link", "show"], { timeoutMs: 10_000, allowFailure: true });
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname).filter((n) => /^(tap-pool-\d+|bt-)/.test(n));
}

async function setElements(family: string, set: string): Promise<string[]> {
  const r = await runner.run("nft", ["-j", "list", "set", family, "banger", set], { timeoutMs: 10_000, allowFailure: true });
  return r.code === 0 ? parseSetElements(r.stdout, set) : [];
}

/** TCP listeners of one process (`ss -ltnp`), as address:port. */
async function listenersOf(pid: number): Promise<string[]> {
  const r = await runner.run("ss", ["-Hltnp"], { timeoutMs: 10_000, allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .filter((l) => l.includes(`pid=${pid},`))
    .map((l) => l.trim().split(/\s+/)[3] ?? "")
    .filter(Boolean);
}

function daemonPid(lockFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(lockFile, "utf8").trim());
    return pid > 0 && existsSync(`/proc/${pid}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

interface ForwardRow {
  vm_id: string;
  host_address: string;
  host_port: number;
}

/**
 * Peer elements must join two TAPs of running VMs; forwards must belong to a VM; and bangerd must listen on no TCP
 * port but its forwards and the web UI (a forward whose VM is gone would still relay to its old address).
 */
async function checkNetPolicy(vms: VmRow[], forwards: ForwardRow[], lockFile: string, webListen: string): Promise<Leak[]> {
  const leaks: Leak[] = [];
  const running = new Set(vms.filter((v) => v.state === "running" && v.tap).map((v) => v.tap!));
  for (const e of await setElements("bridge", "peers")) {
    if (!e.split(" . ").every((t) => running.has(t))) leaks.push({ kind: "nft", what: `peers element ${e} (not two running VMs' TAPs)` });
  }
  const ids = new Set(vms.map((v) => v.id));
  for (const f of forwards) if (!ids.has(f.vm_id)) leaks.push({ kind: "forward", what: `${f.host_address}:${f.host_port} (vm ${f.vm_id} does not exist)` });
  const pid = daemonPid(lockFile);
  if (pid !== undefined) {
    const wanted = new Set([...forwards.map((f) => `${f.host_address}:${f.host_port}`), webListen.replace(/^localhost:/, "127.0.0.1:")]);
    for (const l of await listenersOf(pid))
      if (!wanted.has(l.replace(/^\*:/, "0.0.0.0:"))) leaks.push({ kind: "forward", what: `bangerd (pid ${pid}) listens on ${l}, which no forward names` });
  }
  return leaks;
}

async function checkStateDir(vmsDir: string, dbFile: string, socket: string, poolSize: number, lockFile: string, webListen: string): Promise<Leak[]> {
  const leaks: Leak[] = [];
  let vms: VmRow[] = [];
  let forwards: ForwardRow[] = [];
  let leases: { ip: string; vm_id: string }[] = [];
  if (existsSync(dbFile)) {
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      vms = db.prepare("select id, name, state, tap, pid, nat, ip, role from vms").all() as VmRow[];
      leases = db.prepare("select ip, vm_id from ip_leases").all() as { ip: string; vm_id: string }[];
      const hasForwards = db.prepare("select 1 from sqlite_master where name = 'port_forwards'").get() !== undefined;
      if (hasForwards) forwards = db.prepare("select vm_id, host_address, host_port from port_forwards").all() as ForwardRow[];
    } finally {
      db.close();
    }
  }
  const ids = new Set(vms.map((v) => v.id));
  for (const l of leases) if (!ids.has(l.vm_id)) leaks.push({ kind: "lease", what: `${l.ip} (vm ${l.vm_id} does not exist)` });

  if (existsSync(vmsDir)) {
    for (const entry of readdirSync(vmsDir)) if (!ids.has(entry)) leaks.push({ kind: "vm-dir", what: join(vmsDir, entry) });
  }
  // Firecracker jails (<state_dir>/jail/<exec name>/<id>) exist only while their VM runs.
  const jailBase = join(dirname(vmsDir), "jail");
  const runningIds = new Set(vms.filter((v) => v.state === "running").map((v) => v.id));
  for (const exec of existsSync(jailBase) ? readdirSync(jailBase) : []) {
    for (const id of readdirSync(join(jailBase, exec))) if (!runningIds.has(id)) leaks.push({ kind: "jail", what: join(jailBase, exec, id) });
  }
  for (const p of vmmProcesses()) {
    const m = new RegExp(`${vmsDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/([0-9a-f-]{36})/`).exec(p.cmdline);
    if (!m) continue; // another state dir's VMM, or not banger's
    const owner = vms.find((v) => v.id === m[1]);
    if (!owner || owner.pid !== p.pid || !holdsVmm(owner))
      leaks.push({ kind: "vmm-process", what: `pid ${p.pid} (${owner ? `vm ${owner.name} is ${owner.state}` : `no vm ${m[1]}`})` });
  }
  const owned = new Set(vms.filter((v) => holdsVmm(v) && v.tap).map((v) => v.tap!));
  const taps = await bangerTaps();
  const idlePool = taps.filter((t) => t.startsWith("tap-pool-") && !owned.has(t));
  for (const t of taps) {
    if (owned.has(t)) continue;
    if (t.startsWith("bt-")) leaks.push({ kind: "tap", what: `${t} (no running VM owns it)` });
  }
  if (idlePool.length > poolSize) leaks.push({ kind: "tap", what: `${idlePool.length} idle pool TAPs for tap_pool_size ${poolSize}` });
  const natIps = new Set(vms.filter((v) => v.nat && v.ip && v.state === "running").map((v) => v.ip!));
  // The current inet table, and the ip table of versions before it (a daemon that never restarted since the upgrade).
  for (const family of ["inet", "ip"]) {
    for (const ip of await setElements(family, "nat_guests"))
      if (!natIps.has(ip)) leaks.push({ kind: "nft", what: `nat_guests element ${ip} (no running NAT VM)` });
  }
  leaks.push(...(await checkNetPolicy(vms, forwards, lockFile, webListen)));
  if (existsSync(socket) && !(await socketLive(socket))) leaks.push({ kind: "socket", what: `${socket} (no daemon listening)` });
  for (const v of vms) {
    for (const s of ["qmp.sock", "fc.sock", "vsock.sock", "agent.sock"]) {
      const path = join(vmsDir, v.id, s);
      if (v.state !== "running" && existsSync(path) && !(await socketLive(path, 300)))
        leaks.push({ kind: "socket", what: `${path} (vm ${v.name} is ${v.state})` });
    }
  }
  return leaks;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { config: { type: "string" }, "all-test-namespaces": { type: "boolean", default: false }, json: { type: "boolean", default: false } },
  });
  const leaks: Leak[] = [];
  if (values["all-test-namespaces"]) {
    // CI: after the suite, test namespaces and every VMM they started must be gone.
    const ns = await runner.run("ip", ["netns", "list"], { timeoutMs: 10_000, allowFailure: true });
    for (const line of ns.stdout.split("\n")) {
      const name = line.split(" ")[0];
      if (/^banger-(t|bench)-/.test(name)) leaks.push({ kind: "netns", what: name });
    }
    for (const p of vmmProcesses()) leaks.push({ kind: "vmm-process", what: `pid ${p.pid}: ${p.cmdline.slice(0, 120)}` });
  } else {
    const cfg = loadConfig({ configFlag: values.config });
    leaks.push(
      ...(await checkStateDir(cfg.paths.vmsDir, cfg.paths.dbFile, cfg.paths.socket, cfg.config.tap_pool_size, cfg.paths.lockFile, cfg.config.web.listen)),
    );
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ leaks, count: leaks.length }, null, 2)}\n`);
  } else {
    for (const l of leaks) process.stdout.write(`LEAK  ${l.kind.padEnd(12)} ${l.what}\n`);
    process.stdout.write(leaks.length ? `${leaks.length} leak(s)\n` : "no leaks\n");
  }
  return leaks.length ? 1 : 0;
}

main().then(
  (c) => process.exit(c),
  (e) => {
    process.stderr.write(`verify: ${(e as Error).message}\n`);
    process.exit(2);
  },
);
