import type { Socket } from "node:net";
import { Duplex } from "node:stream";
import type { Logger } from "pino";
import { BangerError } from "../../domain/errors.js";
import { FRAME, FrameParser, MAX_PAYLOAD, WINDOW, encodeFrame, windowPayload, type Frame } from "./frames.js";

// The host end of banger-agent's virtio-serial multiplex (docs/agent.md): one session per VM over
// its agent.sock, handing out a Duplex per stream with credit-based flow control both ways.

export interface MuxOptions {
  vm: string;
  log: Logger;
  /** Streams at once on this VM; the next open fails with CHANNEL_BUSY. Below the agent's own cap. */
  maxStreams?: number;
  /** Liveness: a PING this often while streams are open; silence this long means the agent is gone. */
  pingMs?: number;
  deadMs?: number;
  /** A session with no stream this long is closed (the next open dials again). */
  idleMs?: number;
  onEnd: () => void;
}

export const MUX_MAX_STREAMS = 64;
/**
 * Silence that ends a session with streams. An agent that died and was restarted says HELLO again
 * within its restart delay, which ends the session at once; silence only has to catch an agent that
 * stays gone. Not shorter: a TCG guest on a loaded host was seen silent for over 1.6 s while a
 * CPU-bound program ran in it, and a false CHANNEL_UNAVAILABLE kills every stream of the VM.
 */
const DEAD_MS = 6_000;

/** One stream. Handed out paused once the agent's reply line said OK. */
export class MuxStream extends Duplex {
  credit = WINDOW;
  private queue: { chunk: Buffer; cb: (e?: Error | null) => void }[] = [];
  private pushed = 0;
  private acked = 0;
  private finalCb?: (e?: Error | null) => void;
  localClosed = false;
  remoteClosed = false;
  /** Until the reply line came: its bytes, and how the open learns the outcome. */
  reply: Buffer | undefined = Buffer.alloc(0);
  onReply?: (line: string | Error) => void;

  constructor(
    readonly id: number,
    private readonly session: MuxSession,
  ) {
    super({ readableHighWaterMark: WINDOW, allowHalfOpen: true });
  }

  deliver(data: Buffer): void {
    if (this.reply !== undefined) {
      const all = Buffer.concat([this.reply, data]);
      const nl = all.indexOf(0x0a);
      if (nl < 0 && all.length <= 512) return void (this.reply = all);
      this.reply = undefined;
      this.grant(nl < 0 ? all.length : nl + 1);
      this.onReply?.(nl < 0 ? new Error("the reply line is too long") : all.subarray(0, nl).toString("latin1"));
      data = nl < 0 ? Buffer.alloc(0) : all.subarray(nl + 1);
      if (data.length === 0) return;
    }
    this.pushed += data.length;
    this.push(data);
    // A flowing reader took it already; otherwise _read grants once it is read.
    if (this.readableLength === 0) this.grant();
  }

  /**
   * Grants the agent credit for what the reader consumed, so a slow reader grants nothing and
   * holds up only its own stream. Node calls _read before it takes the chunk out of the buffer,
   * hence the tick: by then the read is done and readableLength says what is still unread.
   */
  private grant(extra = 0): void {
    this.pushed += extra;
    const consumed = this.pushed - this.readableLength;
    const owed = consumed - this.acked;
    if (owed > 0) {
      this.acked = consumed;
      this.session.send(FRAME.WINDOW, this.id, windowPayload(owed));
    }
  }

  remoteClose(): void {
    this.remoteClosed = true;
    if (this.reply !== undefined) return this.onReply?.(new Error("the agent closed the stream without a reply"));
    this.push(null);
  }

  addCredit(n: number): void {
    this.credit += n;
    this.pump();
  }

  override _read(): void {
    process.nextTick(() => this.grant());
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.queue.push({ chunk, cb });
    this.pump();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.finalCb = cb;
    this.pump();
  }

  private pump(): void {
    while (this.queue.length > 0 && this.credit > 0) {
      const head = this.queue[0]!;
      const n = Math.min(head.chunk.length, this.credit, MAX_PAYLOAD);
      if (n > 0) this.session.send(FRAME.DATA, this.id, head.chunk.subarray(0, n));
      this.credit -= n;
      head.chunk = head.chunk.subarray(n);
      if (head.chunk.length === 0) {
        this.queue.shift();
        head.cb();
      }
    }
    if (this.queue.length === 0 && this.finalCb) {
      const cb = this.finalCb;
      this.finalCb = undefined;
      this.localClosed = true;
      this.session.send(FRAME.CLOSE, this.id);
      this.session.settle(this);
      cb();
    }
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.session.forget(this, !(this.localClosed && this.remoteClosed));
    for (const q of this.queue.splice(0)) q.cb(err ?? new Error("stream destroyed"));
    cb(err);
  }
}

/** One VM's multiplex over a connected agent.sock, past the agent's HELLO line. */
export class MuxSession {
  private readonly streams = new Map<number, MuxStream>();
  private readonly parser = new FrameParser();
  private nextId = 1;
  private lastRx = Date.now();
  private idleSince = Date.now();
  private readonly timer: NodeJS.Timeout;
  private ended: BangerError | undefined;

  constructor(
    private readonly sock: Socket,
    rest: Buffer,
    private readonly o: MuxOptions,
  ) {
    sock.on("data", (c: Buffer) => this.receive(c));
    sock.on("close", () => this.end(this.gone("the channel socket closed")));
    sock.on("error", (e) => this.end(this.gone(e.message)));
    this.timer = setInterval(() => this.tick(), o.pingMs ?? 400);
    this.timer.unref();
    if (rest.length > 0) this.receive(rest);
    sock.resume();
  }

  get alive(): boolean {
    return this.ended === undefined;
  }

  /** Opens a stream with a verb line; resolves once the agent's reply says OK. `body` goes right after the open (RUN's script). */
  open(verb: string, o: { timeoutMs: number; signal?: AbortSignal; body?: Buffer }): Promise<MuxStream> {
    if (this.ended) return Promise.reject(this.ended);
    const max = this.o.maxStreams ?? MUX_MAX_STREAMS;
    if (this.streams.size >= max) {
      return Promise.reject(
        new BangerError("CHANNEL_BUSY", `the channel of ${this.o.vm} carries ${max} streams already (the per-VM cap)`, { hint: "retry when one of them ends" }),
      );
    }
    while (this.streams.has(this.nextId)) this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    const s = new MuxStream(this.nextId, this);
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    this.streams.set(s.id, s);
    this.send(FRAME.OPEN, s.id, Buffer.from(verb, "latin1"));
    if (o.body) s.write(o.body);
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => {
        clearTimeout(timer);
        o.signal?.removeEventListener("abort", onAbort);
        s.onReply = undefined;
        s.destroy();
        reject(e);
      };
      const onAbort = () => fail(new BangerError("CANCELLED", `opening ${verb} to ${this.o.vm} was cancelled`));
      const timer = setTimeout(
        () => fail(new BangerError("TIMEOUT", `${verb} to ${this.o.vm} was not answered by banger-agent within ${o.timeoutMs} ms`)),
        o.timeoutMs,
      );
      o.signal?.addEventListener("abort", onAbort, { once: true });
      if (o.signal?.aborted) return onAbort();
      s.onReply = (r) => {
        if (r instanceof BangerError) return fail(r);
        if (r instanceof Error) return fail(new BangerError("CHANNEL_FAILED", `${verb} to ${this.o.vm}: ${r.message}`));
        if (!r.startsWith("OK")) {
          const why = r.startsWith("ERR ") ? `the guest says: ${r.slice(4)}` : `unexpected reply ${JSON.stringify(r)}`;
          return fail(new BangerError("CHANNEL_FAILED", `${verb} to ${this.o.vm}: ${why}`));
        }
        clearTimeout(timer);
        o.signal?.removeEventListener("abort", onAbort);
        s.onReply = undefined;
        s.pause();
        resolve(s);
      };
    });
  }

  send(type: number, id: number, payload?: Buffer): void {
    if (!this.ended) this.sock.write(encodeFrame(type, id, payload));
  }

  /** A stream closed both ways is done: its id is free again. */
  settle(s: MuxStream): void {
    if (s.localClosed && s.remoteClosed && this.streams.get(s.id) === s) {
      this.streams.delete(s.id);
      this.touchIdle();
    }
  }

  forget(s: MuxStream, reset: boolean): void {
    if (this.streams.get(s.id) !== s) return;
    this.streams.delete(s.id);
    this.touchIdle();
    if (reset) this.send(FRAME.RESET, s.id);
  }

  /** Hangs up on the agent; streams still open fail, and only then is it worth a warning. */
  close(): void {
    this.end(this.streams.size > 0 ? this.gone("the session was closed") : undefined);
  }

  private touchIdle(): void {
    if (this.streams.size === 0) this.idleSince = Date.now();
  }

  private gone(why: string): BangerError {
    return new BangerError("CHANNEL_UNAVAILABLE", `banger-agent in ${this.o.vm} is unavailable: ${why}`, {
      hint: "the agent may have died or the guest stopped; its service manager restarts it, retry shortly",
    });
  }

  private receive(chunk: Buffer): void {
    this.lastRx = Date.now();
    let items;
    try {
      items = this.parser.push(chunk);
    } catch (e) {
      return this.end(this.gone(`protocol error: ${(e as Error).message}`));
    }
    for (const it of items) {
      if (this.ended) return;
      if (it.kind === "hello") {
        // A repeated offer before anything else is a leftover; later, the agent has restarted.
        if (this.nextId === 1 && this.streams.size === 0) continue;
        return this.end(this.gone("the agent restarted"));
      }
      this.onFrame(it.frame);
    }
  }

  private onFrame(f: Frame): void {
    if (f.type === FRAME.PONG || f.type === FRAME.PING) return;
    const s = this.streams.get(f.id);
    if (!s) return; // late frames for a stream already let go
    switch (f.type) {
      case FRAME.DATA:
        return s.deliver(f.payload);
      case FRAME.CLOSE:
        s.remoteClose();
        return this.settle(s);
      case FRAME.WINDOW:
        return f.payload.length === 4 ? s.addCredit(f.payload.readUInt32BE(0)) : undefined;
      case FRAME.RESET: {
        const why = f.payload.toString("latin1") || "reset by the agent";
        const err = why.startsWith("busy")
          ? new BangerError("CHANNEL_BUSY", `banger-agent in ${this.o.vm}: ${why}`, { hint: "retry when another stream ends" })
          : new BangerError("CHANNEL_FAILED", `banger-agent in ${this.o.vm} reset the stream: ${why}`);
        this.streams.delete(s.id);
        if (s.onReply) return s.onReply(err);
        s.destroy(err);
        return;
      }
    }
  }

  private tick(): void {
    const now = Date.now();
    if (this.streams.size === 0) {
      this.lastRx = now;
      if (now - this.idleSince >= (this.o.idleMs ?? 10_000)) this.end(undefined);
      return;
    }
    if (now - this.lastRx > (this.o.deadMs ?? DEAD_MS)) return this.end(this.gone(`no answer to keepalive pings for ${now - this.lastRx} ms`));
    this.send(FRAME.PING, 0, Buffer.from("k"));
  }

  /** Ends the session: every stream fails with `err` (none when it ended idle). */
  private end(err: BangerError | undefined): void {
    if (this.ended) return;
    this.ended = err ?? this.gone("the session ended");
    clearInterval(this.timer);
    this.o.onEnd();
    if (err) this.o.log.warn({ vm: this.o.vm, stage: "channel", err: err.message }, "banger-agent session ended");
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const s of streams) {
      if (s.onReply) s.onReply(this.ended);
      // A stream the agent had finished lost nothing.
      else s.destroy(s.remoteClosed ? undefined : this.ended);
    }
    this.sock.destroy();
  }
}
