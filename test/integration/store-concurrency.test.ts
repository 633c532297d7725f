// Several OS processes share one state database, as bangerd and a verifier
// script do. Each process runs the real SqliteStore through vite-node.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../src/adapters/sqlite/store.js";
import { leases } from "../helpers/db.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const VITE_NODE = join(ROOT, "node_modules", ".bin", "vite-node");
const STORE_TS = join(ROOT, "src", "adapters", "sqlite", "store.ts");
const CHILD_TIMEOUT_MS = 60_000;
const haveViteNode = existsSync(VITE_NODE);
if (!haveViteNode) console.warn(`store-concurrency: skipped, ${VITE_NODE} is missing (run npm ci)`);

// argv: dbFile tag startAtEpochMs vmCount poolSize
const WORKER = `
import { SqliteStore } from ${JSON.stringify(STORE_TS)};
const [file, tag, startAt, vmCount, poolSize] = process.argv.slice(2);
const wait = Number(startAt) - Date.now();
// Line every worker up on the same instant so they race on the fresh file (including its migration).
if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
const s = SqliteStore.open(file);
const imageId = "img-" + tag;
s.insertImage({ id: imageId, name: imageId, bootArgs: "console=ttyS0", guest: { os: "linux", services: [] }, artifacts: [] });
const pool = Array.from({ length: Number(poolSize) }, (_, i) => "10.9.0." + (i + 2));
const out = [];
for (let i = 0; i < Number(vmCount); i++) {
  const id = "vm-" + tag + "-" + i;
  const now = new Date().toISOString();
  s.insertVm({ id, name: tag + "-" + i, imageId, imageName: imageId, state: "creating", vmm: "qemu", vcpus: 1, memoryMib: 256,
    workDiskGib: 1, nat: false, dir: "/tmp/" + id, workSeedFallback: true, createdAt: now, updatedAt: now });
  out.push({ vmId: id, ip: s.allocateLease(id, pool) ?? null, cid: s.allocateVsockCid(id) });
}
s.close();
console.log(JSON.stringify(out));
`;

// argv: dbFile vmId — announces itself, then allocates while the parent may hold the write lock.
const WAITER = `
import { SqliteStore } from ${JSON.stringify(STORE_TS)};
const [file, vmId] = process.argv.slice(2);
const s = SqliteStore.open(file);
console.log("allocating");
const ip = s.allocateLease(vmId, ["10.8.0.2", "10.8.0.3"]);
s.close();
console.log(JSON.stringify({ ip }));
`;

interface Child {
  lines: string[];
  done: Promise<{ code: number | null; stderr: string }>;
  onLine(cb: (line: string) => void): void;
}

function runTs(script: string, args: string[]): Child {
  const child = spawn(VITE_NODE, ["--root", ROOT, script, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  const listeners: ((l: string) => void)[] = [];
  let buf = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => {
    buf += b.toString();
    const parts = buf.split("\n");
    buf = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      for (const cb of listeners) cb(l);
    }
  });
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.on("close", (code) => {
      clearTimeout(timer);
      if (buf) lines.push(buf);
      resolve({ code, stderr });
    });
  });
  return { lines, done, onLine: (cb) => listeners.push(cb) };
}

describe.skipIf(!haveViteNode)("SqliteStore shared by several processes (needs node_modules/.bin/vite-node)", () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "banger-store-mp-"));
    writeFileSync(join(dir, "worker.ts"), WORKER);
    writeFileSync(join(dir, "waiter.ts"), WAITER);
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("racing processes on a fresh file never share an IP or a vsock CID", async () => {
    const file = join(dir, "race.db");
    const workers = 4;
    const perWorker = 15;
    const poolSize = 40;
    const startAt = Date.now() + 4000;
    const children = Array.from({ length: workers }, (_, w) =>
      runTs(join(dir, "worker.ts"), [file, `w${w}`, String(startAt), String(perWorker), String(poolSize)]),
    );
    const results = await Promise.all(children.map((c) => c.done));
    results.forEach((r, i) => expect(r.code, `worker ${i} stderr: ${r.stderr}`).toBe(0));

    const rows = children.flatMap((c) => JSON.parse(c.lines.filter((l) => l.startsWith("[")).at(-1)!) as { vmId: string; ip: string | null; cid: number }[]);
    expect(rows).toHaveLength(workers * perWorker);
    const ips = rows.map((r) => r.ip).filter((ip): ip is string => ip !== null);
    expect(ips).toHaveLength(poolSize);
    expect(new Set(ips).size).toBe(poolSize);
    const cids = rows.map((r) => r.cid).sort((a, b) => a - b);
    expect(cids).toEqual(Array.from({ length: workers * perWorker }, (_, i) => i + 3));

    const s = SqliteStore.open(file);
    try {
      const held = leases(s);
      expect(held).toHaveLength(poolSize);
      const byVm = new Map(rows.filter((r) => r.ip).map((r) => [r.vmId, r.ip]));
      for (const l of held) expect(byVm.get(l.vmId)).toBe(l.ip);
      expect(s.listImages()).toHaveLength(workers);
    } finally {
      s.close();
    }
  });

  it("a writer waits for another process's open transaction and then sees its result", async () => {
    const file = join(dir, "wait.db");
    const s = SqliteStore.open(file);
    s.insertImage({ id: "img", name: "img", bootArgs: "", guest: { os: "linux", services: [] }, artifacts: [] });
    for (const n of ["holder", "waiter"]) {
      s.insertVm({
        id: n,
        name: n,
        imageId: "img",
        imageName: "img",
        state: "creating",
        vmm: "qemu",
        vcpus: 1,
        memoryMib: 256,
        workDiskGib: 1,
        nat: false,
        dir: `/tmp/${n}`,
        workSeedFallback: true,
        createdAt: "x",
        updatedAt: "x",
      });
    }
    s.close();

    const raw = new Database(file);
    try {
      raw.exec("BEGIN IMMEDIATE");
      raw.prepare("INSERT INTO ip_leases (ip, vm_id) VALUES ('10.8.0.2', 'holder')").run();
      const child = runTs(join(dir, "waiter.ts"), [file, "waiter"]);
      // Commit only once the child is past open() and about to write, so it must have found the lock taken.
      await new Promise<void>((resolve) => {
        child.onLine((l) => l === "allocating" && resolve());
        void child.done.then(() => resolve());
      });
      await new Promise((r) => setTimeout(r, 500));
      raw.exec("COMMIT");
      const res = await child.done;
      expect(res.code, res.stderr).toBe(0);
      expect(child.lines).toContain("allocating");
      expect(JSON.parse(child.lines.at(-1)!)).toEqual({ ip: "10.8.0.3" });
    } finally {
      if (raw.inTransaction) raw.exec("ROLLBACK");
      raw.close();
    }
  });
});
