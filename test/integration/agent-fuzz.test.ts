import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FRAME, MAX_PAYLOAD, encodeFrame } from "../../src/adapters/channel/frames.js";
import { SocketGuestChannel } from "../../src/adapters/channel/guest-channel.js";
import { RawAgent, agentSkipReason, qemuChardev, startAgent } from "../helpers/agent.js";
import { seededRandom } from "../../src/domain/names.js";

const skip = agentSkipReason();
const log = { info() {}, warn() {}, error() {}, debug() {} } as never;
const SEED = 0x5eed19;
const SESSIONS = 16;
const FRAMES_PER_SESSION = 200;

/**
 * One session's bytes: frames of every type (and unknown ones), random ids, verbs and payloads,
 * oversized frames with the bytes they claim; when `mutate`, also garbage between frames and
 * flipped bytes, after which a length-prefixed stream cannot be expected to resynchronise.
 */
function fuzzBytes(rnd: () => number, echoPort: number, mutate: boolean): Buffer {
  const int = (n: number) => Math.floor(rnd() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const verbs = () =>
    [`CONNECT ${echoPort}`, `CONNECT ${int(70_000)}`, "CONNECT", `READY ${echoPort}`, `READY ${int(99_999)} x`, "", bytes(int(300)).toString("latin1")][
      int(7)
    ]!;
  const parts: Buffer[] = [];
  for (let i = 0; i < FRAMES_PER_SESSION; i++) {
    const type = int(10);
    const id = int(6);
    const r = rnd();
    if (r < 0.05) {
      // An oversized frame, with the bytes it claims.
      const len = MAX_PAYLOAD + 1 + int(20_000);
      const h = Buffer.alloc(9);
      h.writeUInt8(type, 0);
      h.writeUInt32BE(id, 1);
      h.writeUInt32BE(len, 5);
      parts.push(h, bytes(len));
    } else if (mutate && r < 0.1) {
      parts.push(bytes(int(40))); // garbage between frames
    } else {
      const payload =
        type === FRAME.OPEN
          ? Buffer.from(verbs(), "latin1")
          : type === FRAME.WINDOW && rnd() < 0.7
            ? Buffer.from([0, 0, int(256), int(256)])
            : bytes(int(2_000));
      parts.push(encodeFrame(type, id, payload.subarray(0, MAX_PAYLOAD)));
    }
  }
  const all = Buffer.concat(parts);
  for (let m = mutate ? int(20) : 0; m > 0; m--) all[int(all.length)] = int(256);
  // The fuzzer must never ask the agent to run a shell: no RUN verb, however the bytes fell.
  for (let at = all.indexOf("RUN"); at >= 0; at = all.indexOf("RUN", at)) all[at] = 0x58;
  return all;
}

describe.skipIf(skip)(`banger-agent's frame parser survives seeded random frames${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let dir: string;
  let chardev: { close: () => Promise<void> };
  let agent: ChildProcess;
  let echo: Server;
  let exited = false;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "agent-fuzz-"));
    chardev = await qemuChardev(dir);
    agent = startAgent(dir);
    agent.once("exit", () => (exited = true));
    echo = createServer((c) => {
      c.on("error", () => undefined);
      c.pipe(c);
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  });
  afterAll(async () => {
    agent?.kill("SIGKILL");
    await chardev?.close();
    echo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`${SESSIONS * FRAMES_PER_SESSION} random frames over ${SESSIONS} host connections, then a fresh stream still works`, async () => {
    const rnd = seededRandom(SEED);
    let synced = 0;
    const port = (echo.address() as AddressInfo).port;
    for (let s = 0; s < SESSIONS; s++) {
      const raw = await RawAgent.connect(join(dir, "agent.sock"));
      expect(raw.hello).toBe("HELLO banger-agent 1");
      const mutate = s % 2 === 1;
      const data = fuzzBytes(rnd, port, mutate);
      // In random slices, so frames straddle reads.
      for (let at = 0; at < data.length;) {
        const n = 1 + Math.floor(rnd() * 9_000);
        raw.sock.write(data.subarray(at, at + n));
        at += n;
      }
      // A ping the agent answers once it has parsed its way past everything before it. A mutated
      // length can leave it skipping gigabytes until the host leaves (as it should), so the wait
      // is bounded; leaving resets it.
      const tag = Buffer.from(`done-${s}`);
      raw.sock.write(encodeFrame(FRAME.PING, 0, tag));
      await Promise.race([
        raw.until(() => raw.frames.some((f) => f.type === FRAME.PONG && f.payload.equals(tag))).then(() => !mutate && synced++),
        new Promise((r) => setTimeout(r, mutate ? 300 : 5_000)),
      ]);
      raw.sock.destroy();
      expect(exited).toBe(false);
    }
    // Every well-framed session was parsed to its end, whatever it held.
    expect(synced).toBe(SESSIONS / 2);
    const ch = new SocketGuestChannel({ log, vhostVsock: () => false });
    const o = await ch.open({ name: "fz", vmm: "qemu", dir, vsockCid: 3 }, port, { timeoutMs: 10_000 });
    const s = o.stream as Duplex;
    const back = new Promise<string>((r) => s.once("data", (c: Buffer) => r(c.toString())));
    s.resume();
    s.write("alive after the fuzz");
    expect(await back).toBe("alive after the fuzz");
    s.destroy();
    expect(exited).toBe(false);
  });
});
