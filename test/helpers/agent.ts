import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { FrameParser, type Frame } from "../../src/adapters/channel/frames.js";
import { REPO } from "./daemon.js";

export const AGENT_BIN = join(REPO, "build/agent/banger-agent");

function hasCommand(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Builds the agent when the toolchain is here; the reason to skip otherwise. */
export function agentSkipReason(): string | undefined {
  if (!existsSync(AGENT_BIN)) {
    if (!hasCommand("musl-gcc")) return "musl-gcc missing (apt-get install musl-tools), and no build/agent/banger-agent: run make agent";
    execFileSync("make", ["-s", "agent"], { cwd: REPO, stdio: "ignore", timeout: 120_000 });
  }
  return existsSync(AGENT_BIN) ? undefined : "build/agent/banger-agent missing: run make agent";
}

/**
 * Plays QEMU's virtio-serial chardev: bangerd's side connects to `<dir>/agent.sock`, the agent
 * (--serial-unix) to `<dir>/guest.sock`. A host connection is paired with the agent's; the host
 * leaving hangs the agent's end up (the guest's POLLHUP), the agent dying leaves the host's end
 * open, as QEMU does, so only the keepalive can tell.
 */
export async function qemuChardev(dir: string): Promise<{ close: () => Promise<void> }> {
  const guests: Socket[] = [];
  const waiting: ((g: Socket) => void)[] = [];
  const all = new Set<Socket>();
  const track = (s: Socket) => {
    all.add(s);
    s.on("close", () => all.delete(s));
    s.on("error", () => undefined);
  };
  const guestSide = createServer((g) => {
    track(g);
    g.pause();
    const w = waiting.shift();
    if (w) w(g);
    else guests.push(g);
  });
  const hostSide = createServer((h) => {
    track(h);
    h.pause();
    const pair = (g: Socket) => {
      h.pipe(g, { end: false });
      g.pipe(h, { end: false });
      h.resume();
      g.resume();
      h.once("close", () => g.destroy());
    };
    // A guest connection that already went away is not one to pair with.
    while (guests.length > 0 && guests[0]!.destroyed) guests.shift();
    const g = guests.shift();
    if (g) pair(g);
    else waiting.push(pair);
  });
  await Promise.all([
    new Promise<void>((r) => guestSide.listen(join(dir, "guest.sock"), r)),
    new Promise<void>((r) => hostSide.listen(join(dir, "agent.sock"), r)),
  ]);
  const closeServer = (s: Server) => new Promise<void>((r) => s.close(() => r()));
  return {
    close: async () => {
      for (const s of all) s.destroy();
      await Promise.all([closeServer(guestSide), closeServer(hostSide)]);
    },
  };
}

export function startAgent(dir: string): ChildProcess {
  return spawn(AGENT_BIN, ["--serial-unix", join(dir, "guest.sock"), "--no-vsock"], { stdio: ["ignore", "ignore", "pipe"] });
}

/** A raw frame-level client of agent.sock: what the tests use to send what bangerd never would. */
export class RawAgent {
  readonly frames: Frame[] = [];
  hello = "";
  private readonly parser = new FrameParser();
  private waiters: (() => void)[] = [];

  private constructor(readonly sock: Socket) {}

  static async connect(path: string): Promise<RawAgent> {
    const sock = connect(path);
    const raw = new RawAgent(sock);
    sock.on("error", () => undefined);
    sock.on("data", (c: Buffer) => {
      for (const it of raw.parser.push(c)) {
        if (it.kind === "hello") raw.hello = it.line;
        else raw.frames.push(it.frame);
      }
      for (const w of raw.waiters.splice(0)) w();
    });
    await raw.until(() => raw.hello !== "");
    return raw;
  }

  /** Resolves once `cond` holds on what arrived (the test's own timeout bounds the wait). */
  until(cond: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (cond() ? resolve() : this.waiters.push(check));
      check();
    });
  }

  /** The bytes of DATA frames on a stream, as text. */
  text(id: number): string {
    return Buffer.concat(this.frames.filter((f) => f.id === id && f.type === 2).map((f) => f.payload)).toString("latin1");
  }

  has(id: number, type: number): boolean {
    return this.frames.some((f) => f.id === id && f.type === type);
  }
}
