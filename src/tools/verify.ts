#!/usr/bin/env node
/**
 * Leak verifier (./verify.sh): lists what banger left on the host that no VM
 * in the store owns. Exit 0 when clean, 1 with the list otherwise. Works with
 * the daemon up or down: it reads the database read-only and inspects the
 * host directly (in the current network namespace).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { ExecRunner } from "../adapters/exec/runner.js";
import { loadConfig } from "../config/load.js";
import { socketLive } from "../daemon/lock.js";

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
}

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

async function natElements(): Promise<string[]> {
  const r = await runner.run("nft", ["-j", "list", "set", "ip", "banger", "nat_guests"], { timeoutMs: 10_000, allowFailure: true });
  if (r.code !== 0) return [];
  const items = JSON.parse(r.stdout).nftables as { set?: { elem?: unknown[] } }[];
  return items.flatMap((i) => i.set?.elem ?? []).map(String);
}

async function checkStateDir(vmsDir: string, dbFile: string, socket: string, poolSize: number): Promise<Leak[]> {
  const leaks: Leak[] = [];
  let vms: VmRow[] = [];
  let leases: { ip: string; vm_id: string }[] = [];
  if (existsSync(dbFile)) {
    const db = new Database(dbFile, { readonly: true, fileMustExist: true });
    try {
      vms = db.prepare("select id, name, state, tap, pid, nat, ip from vms").all() as VmRow[];
      leases = db.prepare("select ip, vm_id from ip_leases").all() as { ip: string; vm_id: string }[];
    } finally {
      db.close();
    }
  }
  const ids = new Set(vms.map((v) => v.id));
  for (const l of leases) if (!ids.has(l.vm_id)) leaks.push({ kind: "lease", what: `${l.ip} (vm ${l.vm_id} does not exist)` });

  if (existsSync(vmsDir)) {
    for (const entry of readdirSync(vmsDir)) if (!ids.has(entry)) leaks.push({ kind: "vm-dir", what: join(vmsDir, entry) });
  }
  for (const p of vmmProcesses()) {
    const m = new RegExp(`${vmsDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/([0-9a-f-]{36})/`).exec(p.cmdline);
    if (!m) continue; // another state dir's VMM, or not banger's
    const owner = vms.find((v) => v.id === m[1]);
    if (!owner || owner.pid !== p.pid || owner.state !== "running")
      leaks.push({ kind: "vmm-process", what: `pid ${p.pid} (${owner ? `vm ${owner.name} is ${owner.state}` : `no vm ${m[1]}`})` });
  }
  const owned = new Set(vms.filter((v) => v.state === "running" && v.tap).map((v) => v.tap!));
  const taps = await bangerTaps();
  const idlePool = taps.filter((t) => t.startsWith("tap-pool-") && !owned.has(t));
  for (const t of taps) {
    if (owned.has(t)) continue;
    if (t.startsWith("bt-")) leaks.push({ kind: "tap", what: `${t} (no running VM owns it)` });
  }
  if (idlePool.length > poolSize) leaks.push({ kind: "tap", what: `${idlePool.length} idle pool TAPs for tap_pool_size ${poolSize}` });
  const natIps = new Set(vms.filter((v) => v.nat && v.ip && v.state === "running").map((v) => v.ip!));
  for (const ip of await natElements()) if (!natIps.has(ip)) leaks.push({ kind: "nft", what: `nat_guests element ${ip} (no running NAT VM)` });
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
    leaks.push(...(await checkStateDir(cfg.paths.vmsDir, cfg.paths.dbFile, cfg.paths.socket, cfg.config.tap_pool_size)));
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
