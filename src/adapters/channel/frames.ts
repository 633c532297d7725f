// The frame codec of banger-agent's virtio-serial multiplex (docs/agent.md; the agent's side is
// guest/agent/mux.c). A frame: type (1 byte), stream id (u32 BE), payload length (u32 BE), payload.

export const FRAME = { OPEN: 1, DATA: 2, CLOSE: 3, WINDOW: 4, RESET: 5, PING: 6, PONG: 7 } as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];

export const HDR_LEN = 9;
/** The largest payload either side sends or accepts. */
export const MAX_PAYLOAD = 65_536;
/** What each side may send on a stream before the receiver grants more. */
export const WINDOW = 131_072;
export const PROTOCOL_VERSION = 1;
/** The agent's first line on each host connection; the legacy sh channel says a bare "HELLO". */
export const AGENT_HELLO = /^HELLO banger-agent (\d+)$/;

const EMPTY = Buffer.alloc(0);
/** No frame type is 'H': a HELLO line where a frame should start means the agent restarted. */
const H = 0x48;
const MAX_HELLO = 64;

export interface Frame {
  type: number;
  id: number;
  payload: Buffer;
}

export type ParsedItem = { kind: "frame"; frame: Frame } | { kind: "hello"; line: string };

export function encodeFrame(type: number, id: number, payload: Buffer = EMPTY): Buffer {
  if (payload.length > MAX_PAYLOAD) throw new RangeError(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  const h = Buffer.allocUnsafe(HDR_LEN + payload.length);
  h.writeUInt8(type, 0);
  h.writeUInt32BE(id >>> 0, 1);
  h.writeUInt32BE(payload.length, 5);
  payload.copy(h, HDR_LEN);
  return h;
}

export function windowPayload(credit: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(credit >>> 0, 0);
  return b;
}

/** A protocol violation by the peer: the session cannot be trusted past it. */
export class FrameError extends Error {}

/**
 * Incremental parser: feed it chunks, get whole frames (and HELLO lines, which only the session
 * start may legitimately carry) in order. Throws FrameError on what no well-behaved agent sends.
 */
export class FrameParser {
  private buf: Buffer = EMPTY;

  push(chunk: Buffer): ParsedItem[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const items: ParsedItem[] = [];
    let at = 0;
    while (this.buf.length - at > 0) {
      if (this.buf[at] === H) {
        const nl = this.buf.indexOf(0x0a, at);
        if (nl < 0) {
          if (this.buf.length - at > MAX_HELLO) throw new FrameError("a text line where a frame should start");
          break;
        }
        items.push({ kind: "hello", line: this.buf.subarray(at, nl).toString("latin1") });
        at = nl + 1;
        continue;
      }
      if (this.buf.length - at < HDR_LEN) break;
      const type = this.buf.readUInt8(at);
      const id = this.buf.readUInt32BE(at + 1);
      const len = this.buf.readUInt32BE(at + 5);
      if (type < FRAME.OPEN || type > FRAME.PONG) throw new FrameError(`unknown frame type ${type}`);
      if (len > MAX_PAYLOAD) throw new FrameError(`frame of ${len} bytes exceeds ${MAX_PAYLOAD}`);
      if (this.buf.length - at < HDR_LEN + len) break;
      // A copy: the payload outlives this buffer (a stream may hold it a while).
      items.push({ kind: "frame", frame: { type, id, payload: Buffer.from(this.buf.subarray(at + HDR_LEN, at + HDR_LEN + len)) } });
      at += HDR_LEN + len;
    }
    this.buf = at === this.buf.length ? EMPTY : this.buf.subarray(at);
    return items;
  }
}
