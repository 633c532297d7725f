import { readFileSync } from "node:fs";
import { readdir, readlink } from "node:fs/promises";
import type { Socket } from "node:net";
import { BangerError } from "../../domain/errors.js";
import type { Caller } from "../../domain/caller.js";
import type { Runner } from "../../ports/runner.js";

/**
 * Who is on the other end of a Unix socket connection. Node has no SO_PEERCRED and no npm
 * package for it is both maintained and free of a native build, so this asks the kernel the way
 * `ss` does (sock_diag): our end's inode (from /proc/self/fd) → the peer socket's inode → the
 * processes holding it → their *real* uid and groups in /proc. Real, not effective: a client that
 * hands its connection to a setuid program still counts as itself. Holders with different real
 * uids are refused. Looked up once per connection.
 */
export class PeerCredentials {
  private readonly cache = new WeakMap<Socket, Promise<Caller>>();

  constructor(private readonly runner: Runner) {}

  of(socket: Socket): Promise<Caller> {
    let p = this.cache.get(socket);
    if (!p) {
      p = this.lookup(socket);
      this.cache.set(socket, p);
    }
    return p;
  }

  private async lookup(socket: Socket): Promise<Caller> {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== "number" || fd < 0) throw unknown("the connection has no descriptor");
    const link = await readlink(`/proc/self/fd/${fd}`);
    const ours = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (!ours) throw unknown(`fd ${fd} is ${link}, not a socket`);
    // An accepted Unix socket lives in the client's network namespace, which is ours unless the
    // client runs elsewhere (bangerd under `ip netns exec` in tests, a CLI on the host): then it is
    // looked up in the host's namespace.
    let rows = parseSsUnix((await this.runner.run("ss", ["-xpnH"], { timeoutMs: 5_000 })).stdout);
    if (!rows.some((r) => r.inode === ours)) {
      for (const pid of await otherNetns()) {
        const there = await this.runner.run("nsenter", [`--net=/proc/${pid}/ns/net`, "ss", "-xpnH"], { timeoutMs: 5_000, allowFailure: true });
        rows = parseSsUnix(there.stdout);
        if (rows.some((r) => r.inode === ours)) break;
      }
    }
    const peer = rows.find((r) => r.inode === ours)?.peer;
    // A client in another network namespace (its socket is listed there, not here): find the
    // processes holding the peer inode through /proc instead.
    const pids = rows.find((r) => r.inode === peer)?.pids ?? (peer && peer !== "*" ? await holdersOf(peer) : []);
    if (!peer || pids.length === 0) throw unknown("no process holds the other end (it may have exited)");
    const callers = pids.map(callerOfPid).filter((c): c is Caller => c !== undefined);
    if (callers.length === 0) throw unknown("the peer process exited");
    if (new Set(callers.map((c) => c.uid)).size > 1) throw unknown("processes of different users hold the connection");
    return callers[0];
  }
}

/** One pid per network namespace other than ours. */
async function otherNetns(): Promise<number[]> {
  const own = await readlink("/proc/self/ns/net");
  const seen = new Map<string, number>();
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const ns = await readlink(`/proc/${pid}/ns/net`).catch(() => undefined);
    if (ns && ns !== own && !seen.has(ns)) seen.set(ns, Number(pid));
  }
  return [...seen.values()];
}

/** Pids with a descriptor on socket inode `inode`, by walking /proc/<pid>/fd. */
async function holdersOf(inode: string): Promise<number[]> {
  const want = `socket:[${inode}]`;
  const out: number[] = [];
  for (const pid of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "")) === want) {
        out.push(Number(pid));
        break;
      }
    }
  }
  return out;
}

function unknown(why: string): BangerError {
  return new BangerError("FORBIDDEN", `cannot tell who is calling: ${why}`, { hint: "connect directly with the banger CLI" });
}

/** `ss -xpnH` rows: our inode, the peer's inode, the pids holding the socket. */
export function parseSsUnix(text: string): { inode: string; peer: string; pids: number[] }[] {
  return text
    .split("\n")
    .filter((l) => l.trim())
    .map((line) => {
      const cols = line.trim().split(/\s+/);
      const pids = [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
      return { inode: cols[5], peer: cols[7], pids };
    });
}

function userName(uid: number): string {
  try {
    const row = readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .find((l) => l.split(":")[2] === String(uid));
    return row?.split(":")[0] ?? String(uid);
  } catch {
    return String(uid);
  }
}

function callerOfPid(pid: number): Caller | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, "m").exec(status)?.[1].trim().split(/\s+/).filter(Boolean).map(Number) ?? [];
  const uid = field("Uid")[0];
  const gid = field("Gid")[0];
  if (uid === undefined || gid === undefined) return undefined;
  return { uid, gids: [...new Set([gid, ...field("Groups")])], name: userName(uid), pid };
}
