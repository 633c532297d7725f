import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FRAME, encodeFrame } from "../../src/adapters/channel/frames.js";
import { SocketGuestChannel } from "../../src/adapters/channel/guest-channel.js";
import { BangerError } from "../../src/domain/errors.js";
import { RawAgent, agentSkipReason, qemuChardev, startAgent } from "../helpers/agent.js";

const skip = agentSkipReason();
const log = { info() {}, warn() {}, error() {}, debug() {} } as never;

async function listen(handler?: (c: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((c) => {
    c.on("error", () => undefined); // a peer torn down at a test's end
    handler?.(c);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Writes `data` and reads until `want` bytes came back. */
function roundTrip(s: Duplex, data: Buffer, want = data.length): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let n = 0;
    s.on("data", (c: Buffer) => {
      got.push(c);
      n += c.length;
      if (n >= want) resolve(Buffer.concat(got));
    });
    s.on("error", reject);
    s.resume();
    s.write(data);
  });
}

function sha(s: Duplex): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    let bytes = 0;
    s.on("data", (c: Buffer) => {
      h.update(c);
      bytes += c.length;
    });
    s.on("end", () => resolve({ hash: h.digest("hex"), bytes }));
    s.on("error", reject);
    s.resume();
  });
}

/** Serves `size` seeded pseudo-random bytes to each connection; `sent` counts what went out. */
async function source(size: number): Promise<{ server: Server; port: number; hash: string; sent: () => number }> {
  const block = randomBytes(1 << 20);
  const h = createHash("sha256");
  for (let i = 0; i < size / block.length; i++) h.update(block);
  let sent = 0;
  const { server, port } = await listen((c) => {
    let left = size / block.length;
    const more = () => {
      while (left > 0) {
        left--;
        sent += block.length;
        if (!c.write(block)) return void c.once("drain", more);
      }
      c.end();
    };
    more();
  });
  return { server, port, hash: h.digest("hex"), sent: () => sent };
}

describe.skipIf(skip)(`banger-agent's multiplex over a virtio-serial chardev${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let dir: string;
  let chardev: { close: () => Promise<void> };
  let agent: ChildProcess;
  let echo: { server: Server; port: number }[];
  const target = () => ({ name: "q1", vmm: "qemu" as const, dir, vsockCid: 5 });
  const channel = () => new SocketGuestChannel({ log, vhostVsock: () => false });

  beforeAll(async () => {
    echo = await Promise.all(Array.from({ length: 8 }, () => listen((c) => c.pipe(c))));
  });
  afterAll(() => echo?.forEach((e) => e.server.close()));
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "agent-"));
    chardev = await qemuChardev(dir);
    agent = startAgent(dir);
  });
  afterEach(async () => {
    agent.kill("SIGKILL");
    await chardev.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("carries 8 concurrent CONNECT streams to their own echo servers, each with its own bytes", async () => {
    const ch = channel();
    const opened = await Promise.all(echo.map((e) => ch.open(target(), e.port, { timeoutMs: 10_000 })));
    expect(opened.map((o) => o.via)).toEqual(Array(8).fill("virtio-serial"));
    const data = opened.map(() => randomBytes(300_000));
    const back = await Promise.all(opened.map((o, i) => roundTrip(o.stream as Duplex, data[i]!)));
    back.forEach((b, i) => expect(b.equals(data[i]!)).toBe(true));
    opened.forEach((o) => o.stream.destroy());
  });

  it("streams 64 MiB byte-identical while another stream is busy and a third reader does not read", async () => {
    const big = await source(64 << 20);
    const slow = await source(16 << 20);
    const ch = channel();
    const [bigS, slowS, busyS] = await Promise.all([
      ch.open(target(), big.port, { timeoutMs: 10_000 }),
      ch.open(target(), slow.port, { timeoutMs: 10_000 }),
      ch.open(target(), echo[0]!.port, { timeoutMs: 10_000 }),
    ]);
    // The slow stream is never read until the big one is through: it may only hold up itself.
    const busyData = randomBytes(4 << 20);
    const [got, busyBack] = await Promise.all([sha(bigS.stream as Duplex), roundTrip(busyS.stream as Duplex, busyData)]);
    expect(got).toEqual({ hash: big.hash, bytes: 64 << 20 });
    expect(busyBack.equals(busyData)).toBe(true);
    expect(slow.sent()).toBeLessThan(16 << 20);
    expect(await sha(slowS.stream as Duplex)).toEqual({ hash: slow.hash, bytes: 16 << 20 });
    [bigS, slowS, busyS].forEach((o) => o.stream.destroy());
    big.server.close();
    slow.server.close();
  });

  it("RUN feeds a script to sh on stdin and reports its output and exit code", async () => {
    const r = await channel().run(target(), 'echo "out $((6 * 7))"\necho to-stderr >&2\nexit 3', { timeoutMs: 10_000 });
    expect(r.code).toBe(3);
    expect(r.lines).toEqual(["out 42", "to-stderr"]);
  });

  it("READY reports LISTEN as a port starts listening, then READY", async () => {
    const probe = await listen(() => undefined);
    const port = probe.port;
    await new Promise((r) => probe.server.close(r));
    const events = await channel().ready(target(), [port], { timeoutMs: 10_000 });
    // Only now does anything listen on the port.
    const later = createServer();
    await new Promise<void>((r) => later.listen(port, "127.0.0.1", r));
    const seen: unknown[] = [];
    for await (const e of events) {
      seen.push(e);
      if (e.kind === "ready") break;
    }
    expect(seen).toEqual([{ kind: "listen", port }, { kind: "ready" }]);
    later.close();
  });

  it("a killed agent fails the open streams with CHANNEL_UNAVAILABLE; its restart serves again", async () => {
    const ch = new SocketGuestChannel({ log, vhostVsock: () => false });
    const o = await ch.open(target(), echo[1]!.port, { timeoutMs: 10_000 });
    const failed = new Promise<unknown>((r) => o.stream.once("error", r));
    o.stream.resume();
    agent.kill("SIGKILL");
    const err = await failed;
    expect(err).toBeInstanceOf(BangerError);
    expect((err as BangerError).code).toBe("CHANNEL_UNAVAILABLE");
    agent = startAgent(dir);
    const again = await ch.open(target(), echo[1]!.port, { timeoutMs: 10_000 });
    expect((await roundTrip(again.stream as Duplex, Buffer.from("still here"))).toString()).toBe("still here");
    again.stream.destroy();
  });

  it("refuses bad input on its stream and keeps serving the others", async () => {
    const raw = await RawAgent.connect(join(dir, "agent.sock"));
    expect(raw.hello).toBe("HELLO banger-agent 1");
    const send = (type: number, id: number, payload: string | Buffer = "") => raw.sock.write(encodeFrame(type, id, Buffer.from(payload)));
    // An oversized frame: a header claiming 70000 bytes, and the bytes, which the agent skips.
    const header = Buffer.alloc(9);
    header.writeUInt8(FRAME.DATA, 0);
    header.writeUInt32BE(1, 1);
    header.writeUInt32BE(70_000, 5);
    send(FRAME.OPEN, 1, `CONNECT ${echo[2]!.port}`);
    raw.sock.write(Buffer.concat([header, Buffer.alloc(70_000, 0x41)]));
    send(FRAME.OPEN, 2, "FROB 22");
    send(FRAME.OPEN, 3, "CONNECT 0");
    send(FRAME.OPEN, 4, "CONNECT 65536");
    send(FRAME.OPEN, 5, "CONNECT abc");
    send(FRAME.OPEN, 6, "RUN 100");
    send(FRAME.DATA, 6, "echo never\n");
    send(FRAME.CLOSE, 6);
    send(FRAME.OPEN, 7, `CONNECT ${echo[3]!.port}`);
    send(FRAME.DATA, 7, "after all that\n");
    await raw.until(() => [1, 2, 3, 4, 5, 6].every((id) => raw.has(id, FRAME.RESET) || raw.has(id, FRAME.CLOSE)) && raw.text(7).includes("after all that"));
    expect(raw.frames.find((f) => f.id === 1 && f.type === FRAME.RESET)?.payload.toString()).toMatch(/frame longer than 65536/);
    expect(raw.text(2)).toMatch(/^ERR unknown verb "FROB"/);
    expect(raw.text(3)).toMatch(/^ERR bad port "0"/);
    expect(raw.text(4)).toMatch(/^ERR bad port "65536"/);
    expect(raw.text(5)).toMatch(/^ERR bad port "abc"/);
    expect(raw.text(6)).toBe("ERR truncated RUN: 11 of 100 bytes came, nothing ran\n");
    expect(raw.text(7)).toBe(`OK ${echo[3]!.port}\nafter all that\n`);
    raw.sock.destroy();
    // The unknown verb through the host side is a coded error naming the problem.
    const bad = await channel()
      .open(target(), 0, { timeoutMs: 10_000 })
      .catch((e: unknown) => e);
    expect((bad as BangerError).code).toBe("CHANNEL_FAILED");
    expect((bad as BangerError).message).toMatch(/bad port "0"/);
  });

  it("answers CHANNEL_BUSY only at the per-VM stream cap", async () => {
    const ch = new SocketGuestChannel({ log, vhostVsock: () => false, mux: { maxStreams: 3 } });
    const open = await Promise.all([0, 1, 2].map((i) => ch.open(target(), echo[i]!.port, { timeoutMs: 10_000 })));
    const busy = await ch.open(target(), echo[3]!.port, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect((busy as BangerError).code).toBe("CHANNEL_BUSY");
    open[0]!.stream.destroy();
    await new Promise((r) => setImmediate(r));
    const next = await ch.open(target(), echo[3]!.port, { timeoutMs: 10_000 });
    expect((await roundTrip(next.stream as Duplex, Buffer.from("x"))).toString()).toBe("x");
    [...open, next].forEach((o) => o.stream.destroy());
  });
});
