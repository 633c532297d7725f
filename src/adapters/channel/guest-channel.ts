import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Duplex } from "node:stream";
import type { Logger } from "pino";
import { BangerError } from "../../domain/errors.js";
import type { ChannelTarget, GuestChannel, OpenedStream, ReadyEvent, RunResult } from "../../ports/channel.js";
import { firecrackerSocket } from "../firecracker/layout.js";
import { dialGuestPort, dialSerial } from "./handshake.js";
import { MuxSession, MuxStream } from "./mux.js";
import { readyEvents } from "./ready.js";
import { readRunResult, wrapScript } from "./run.js";

/** How long a second open of a virtio-serial channel waits for the session before it to end. */
const SERIAL_BUSY_WAIT_MS = 2_000;
export const VHOST_VSOCK_DEV = "/dev/vhost-vsock";

export interface GuestChannelOptions {
  log: Logger;
  /** Whether QEMU guests get a vhost-vsock device on this host (the QEMU driver asks the same question). */
  vhostVsock?: () => boolean;
  serialBusyWaitMs?: number;
  /** banger-agent sessions: streams per VM, keepalive (tests shorten them). */
  mux?: { maxStreams?: number; pingMs?: number; deadMs?: number; idleMs?: number };
  /** The virtio-serial port's host socket (default `<dir>/agent.sock`, QEMU's chardev; the fake Firecracker names its own). */
  serialPath?: (t: ChannelTarget) => string;
  /** Where Firecracker jails are built; a jailed VM's vsock socket is inside its jail. */
  firecrackerChrootBase?: string;
}

/**
 * The one host-side way into a guest port:
 * - Firecracker: its hybrid vsock ("CONNECT <port>"), `<dir>/vsock.sock` or inside the VM's jail (firecrackerSocket).
 * - QEMU on a host with /dev/vhost-vsock: AF_VSOCK to the VM's CID, through `socat` (Node has no
 *   AF_VSOCK). Untested on the development host, which has no /dev/vhost-vsock.
 * - QEMU otherwise: the virtio-serial agent port, `<dir>/agent.sock`. banger-agent (its HELLO names
 *   itself) multiplexes many streams over it, one shared session per VM (mux.ts). The legacy sh
 *   banger-channel of older images is one byte stream, so one session at a time per VM: a second
 *   open waits briefly for the first to end, then fails with CHANNEL_BUSY.
 */
export class SocketGuestChannel implements GuestChannel {
  /** Per VM dir: the end of the virtio-serial session in progress. */
  private readonly serialHeld = new Map<string, Promise<void>>();
  /** Per VM dir: the live banger-agent session, and a dial in progress (whose outcome says which kind of guest it is). */
  private readonly sessions = new Map<string, MuxSession>();
  private readonly dialing = new Map<string, Promise<unknown>>();

  constructor(private readonly o: GuestChannelOptions) {}

  async open(t: ChannelTarget, port: number, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<OpenedStream> {
    const dial = { vm: t.name, timeoutMs: opts.timeoutMs, signal: opts.signal };
    if (t.vmm === "firecracker") {
      return { stream: await dialGuestPort(firecrackerSocket(t.dir, "vsock", this.o.firecrackerChrootBase), "hybrid-vsock", port, dial), via: "hybrid-vsock" };
    }
    if ((this.o.vhostVsock ?? (() => existsSync(VHOST_VSOCK_DEV)))()) return { stream: vhostVsock(t, port), via: "vhost-vsock" };
    return { stream: await this.serial(t, port, dial), via: "virtio-serial" };
  }

  async run(t: ChannelTarget, script: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<RunResult> {
    if (t.vmm === "firecracker" || (this.o.vhostVsock ?? (() => existsSync(VHOST_VSOCK_DEV)))()) {
      throw new BangerError("CHANNEL_UNSUPPORTED", `${t.name}'s channel carries streams to guest ports only (vsock)`, { hint: "reach the guest over SSH" });
    }
    const body = wrapScript(script);
    const deadline = Date.now() + opts.timeoutMs;
    let sock: Duplex;
    try {
      sock = await this.serial(t, 0, { vm: t.name, timeoutMs: opts.timeoutMs, signal: opts.signal, run: body.length }, body);
    } catch (e) {
      // The answer of a banger-channel that predates RUN.
      if (e instanceof BangerError && /malformed request/.test(e.message)) {
        throw new BangerError("CHANNEL_UNSUPPORTED", `${t.name}'s banger-channel cannot run scripts (its image predates that)`, {
          hint: "rebuild the image to get the current banger-channel",
        });
      }
      throw e;
    }
    return readRunResult(sock, sock instanceof MuxStream ? Buffer.alloc(0) : body, {
      vm: t.name,
      timeoutMs: Math.max(1, deadline - Date.now()),
      signal: opts.signal,
    });
  }

  release(t: ChannelTarget): void {
    const session = this.sessions.get(t.dir);
    if (!session) return;
    this.sessions.delete(t.dir);
    session.close();
    this.o.log.debug({ vm: t.name, stage: "channel" }, "banger-agent session released");
  }

  /**
   * Readiness pushed by banger-agent: a LISTEN event as each port starts listening in the guest,
   * then READY once all do. Over virtio-serial only for now; CHANNEL_UNSUPPORTED elsewhere and
   * for the legacy channel (the caller polls instead).
   */
  async ready(t: ChannelTarget, ports: number[], opts: { timeoutMs: number; signal?: AbortSignal }): Promise<AsyncIterable<ReadyEvent>> {
    if (t.vmm === "firecracker" || (this.o.vhostVsock ?? (() => existsSync(VHOST_VSOCK_DEV)))()) {
      throw new BangerError("CHANNEL_UNSUPPORTED", `${t.name}: readiness over vsock is not wired yet`, { hint: "poll the guest instead" });
    }
    try {
      const s = await this.serial(t, 0, { vm: t.name, timeoutMs: opts.timeoutMs, signal: opts.signal }, undefined, `READY ${ports.join(" ")}`);
      // The wait outlives the open: the caller's signal also ends the stream (and so the iteration).
      const stop = () => s.destroy();
      if (opts.signal?.aborted) stop();
      opts.signal?.addEventListener("abort", stop, { once: true });
      s.once("close", () => opts.signal?.removeEventListener("abort", stop));
      return readyEvents(s);
    } catch (e) {
      // The legacy channel was asked "CONNECT 0" instead, and refused it.
      if (e instanceof BangerError && /malformed request/.test(e.message)) {
        throw new BangerError("CHANNEL_UNSUPPORTED", `${t.name} runs the legacy banger-channel, which cannot report readiness`, { hint: "rebuild the image" });
      }
      throw e;
    }
  }

  private async serial(
    t: ChannelTarget,
    port: number,
    dial: { vm: string; timeoutMs: number; signal?: AbortSignal; run?: number },
    body?: Buffer,
    agentVerb?: string,
  ): Promise<Duplex> {
    const verb = agentVerb ?? (dial.run === undefined ? `CONNECT ${port}` : `RUN ${dial.run}`);
    // No await between the checks and claiming the dial below: concurrent opens share one dial.
    for (;;) {
      const live = this.sessions.get(t.dir);
      if (live?.alive) return live.open(verb, { timeoutMs: dial.timeoutMs, signal: dial.signal, body });
      const pending = this.dialing.get(t.dir);
      if (!pending) break;
      await pending;
    }
    const held = this.serialHeld.get(t.dir);
    if (held) {
      const wait = this.o.serialBusyWaitMs ?? SERIAL_BUSY_WAIT_MS;
      let timer: NodeJS.Timeout | undefined;
      const freed = await Promise.race([held.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), wait)))]);
      clearTimeout(timer);
      // The guest may have turned out to run banger-agent, or another waiter took the session.
      if (freed && (this.sessions.get(t.dir)?.alive || this.dialing.has(t.dir))) return this.serial(t, port, dial, body, agentVerb);
      if (!freed || this.serialHeld.has(t.dir)) {
        throw new BangerError("CHANNEL_BUSY", `the virtio-serial channel of ${t.name} carries another session (one at a time on QEMU without vhost-vsock)`, {
          hint: "retry when the other session ends, or reach the guest over its IP",
        });
      }
    }
    let release!: () => void;
    this.serialHeld.set(t.dir, new Promise<void>((r) => (release = r)));
    const free = () => {
      this.serialHeld.delete(t.dir);
      release();
    };
    let settle!: () => void;
    this.dialing.set(t.dir, new Promise<void>((r) => (settle = r)));
    try {
      const d = await dialSerial(this.o.serialPath?.(t) ?? join(t.dir, "agent.sock"), port, dial);
      if (d.kind === "agent") {
        free();
        const session: MuxSession = new MuxSession(d.sock, d.rest, {
          vm: t.name,
          log: this.o.log,
          ...this.o.mux,
          onEnd: () => {
            if (this.sessions.get(t.dir) === session) this.sessions.delete(t.dir);
          },
        });
        this.sessions.set(t.dir, session);
        this.o.log.debug({ vm: t.name, stage: "channel", version: d.version }, "banger-agent session opened");
        return await session.open(verb, { timeoutMs: dial.timeoutMs, signal: dial.signal, body });
      }
      d.sock.once("close", free);
      this.o.log.debug({ vm: t.name, stage: "channel", port }, "virtio-serial session opened (legacy channel)");
      return d.sock;
    } catch (e) {
      free();
      throw e;
    } finally {
      this.dialing.delete(t.dir);
      settle();
    }
  }
}

/** AF_VSOCK to the guest through socat, as one Duplex over its stdio. */
function vhostVsock(t: ChannelTarget, port: number): Duplex {
  const child = spawn("socat", ["-", `VSOCK-CONNECT:${t.vsockCid}:${port}`], { stdio: ["pipe", "pipe", "ignore"] });
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  stream.once("close", () => child.kill("SIGTERM"));
  child.once("error", (e) =>
    stream.destroy(new BangerError("CHANNEL_FAILED", `cannot run socat for vhost-vsock: ${e.message}`, { hint: "apt-get install socat" })),
  );
  return stream;
}
