import { describe, expect, it } from "vitest";
import { FRAME, FrameError, FrameParser, MAX_PAYLOAD, encodeFrame, windowPayload } from "../../src/adapters/channel/frames.js";

describe("banger-agent frame codec", () => {
  it("round-trips frames split at every byte boundary", () => {
    const frames = [
      encodeFrame(FRAME.OPEN, 1, Buffer.from("CONNECT 22")),
      encodeFrame(FRAME.DATA, 0x7fffffff, Buffer.alloc(300, 7)),
      encodeFrame(FRAME.CLOSE, 1),
    ];
    const all = Buffer.concat(frames);
    for (let cut = 0; cut <= all.length; cut++) {
      const p = new FrameParser();
      const items = [...p.push(all.subarray(0, cut)), ...p.push(all.subarray(cut))];
      expect(items.map((i) => (i.kind === "frame" ? [i.frame.type, i.frame.id, i.frame.payload.length] : i.line))).toEqual([
        [FRAME.OPEN, 1, 10],
        [FRAME.DATA, 0x7fffffff, 300],
        [FRAME.CLOSE, 1, 0],
      ]);
    }
  });

  it("reads the header big-endian: type, stream id, length", () => {
    expect([...encodeFrame(FRAME.WINDOW, 258, windowPayload(65_536))]).toEqual([4, 0, 0, 1, 2, 0, 0, 0, 4, 0, 1, 0, 0]);
  });

  it("passes HELLO lines through and refuses what no agent sends", () => {
    const p = new FrameParser();
    expect(p.push(Buffer.concat([Buffer.from("HELLO banger-agent 1\n"), encodeFrame(FRAME.PONG, 0, Buffer.from("k"))]))).toMatchObject([
      { kind: "hello", line: "HELLO banger-agent 1" },
      { kind: "frame", frame: { type: FRAME.PONG, id: 0 } },
    ]);
    const big = Buffer.alloc(9);
    big.writeUInt8(FRAME.DATA, 0);
    big.writeUInt32BE(MAX_PAYLOAD + 1, 5);
    expect(() => new FrameParser().push(big)).toThrow(FrameError);
    expect(() => new FrameParser().push(Buffer.from([9, 0, 0, 0, 1, 0, 0, 0, 0]))).toThrow(/unknown frame type 9/);
    expect(() => encodeFrame(FRAME.DATA, 1, Buffer.alloc(MAX_PAYLOAD + 1))).toThrow(RangeError);
  });
});
