import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dialGuestPort, parseReply } from "../../src/adapters/channel/handshake.js";
import { BangerError } from "../../src/domain/errors.js";

const b = (s: string) => Buffer.from(s, "latin1");

describe("CONNECT reply parsing", () => {
  it("hybrid vsock: OK <host port> then the stream; anything else refuses", () => {
    expect(parseReply(b("OK 10"), "hybrid-vsock", 22)).toEqual({ kind: "more" });
    const ok = parseReply(b("OK 1073741824\nSSH-2.0-x"), "hybrid-vsock", 22);
    expect(ok.kind).toBe("ok");
    expect(ok.kind === "ok" && ok.rest.toString()).toBe("SSH-2.0-x");
    expect(parseReply(b("NO\n"), "hybrid-vsock", 22)).toMatchObject({ kind: "refused", why: 'unexpected reply "NO"' });
    expect(parseReply(b("x".repeat(300)), "hybrid-vsock", 22)).toMatchObject({ kind: "refused" });
  });

  it("virtio-serial: leftovers before HELLO are dropped, then OK <port> or ERR", () => {
    expect(parseReply(b("\x00\x17old session bytes"), "virtio-serial", 22)).toEqual({ kind: "more" });
    expect(parseReply(b("junkHELLO\nOK 2"), "virtio-serial", 22)).toEqual({ kind: "more" });
    const ok = parseReply(b("junkHELLO\nOK 22\nSSH-2.0-y\r\n"), "virtio-serial", 22);
    expect(ok.kind === "ok" && ok.rest.toString()).toBe("SSH-2.0-y\r\n");
    expect(parseReply(b("HELLO\nOK 23\n"), "virtio-serial", 22)).toMatchObject({ kind: "refused" });
    // A stale offer, made to a host that left, before the fresh one.
    expect(parseReply(b("HELLO\nHELL"), "virtio-serial", 22)).toEqual({ kind: "more" });
    expect(parseReply(b("HELLO\nHELLO\nOK 22\n"), "virtio-serial", 22)).toMatchObject({ kind: "ok" });
    expect(parseReply(b("HELLO\nERR nothing listens on guest port 22\n"), "virtio-serial", 22)).toEqual({
      kind: "refused",
      why: "the guest says: nothing listens on guest port 22",
    });
    expect(parseReply(Buffer.alloc(70_000, 0x41), "virtio-serial", 22)).toMatchObject({ kind: "refused" });
  });
});

describe("dialGuestPort", () => {
  let dir: string;
  let server: Server | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "chan-"));
  });
  afterEach(async () => {
    if (server) await new Promise((r) => server!.close(r));
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** A channel socket whose far end runs `onConn` with the request line it got. */
  async function channel(onConn: (line: string, sock: Socket) => void, greeting = ""): Promise<string> {
    const path = join(dir, "c.sock");
    server = createServer((sock) => {
      // banger-channel offers its HELLO first and reads the request after it.
      if (greeting) sock.write(greeting);
      let buf = "";
      const onData = (c: Buffer) => {
        buf += c.toString("latin1");
        const nl = buf.indexOf("\n");
        if (nl < 0) return;
        sock.off("data", onData);
        onConn(buf.slice(0, nl), sock);
      };
      sock.on("data", onData);
    });
    await new Promise<void>((r) => server!.listen(path, r));
    return path;
  }

  async function refused(p: Promise<unknown>): Promise<BangerError> {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(BangerError);
    return e as BangerError;
  }

  it("sends CONNECT <port>, and bytes that came with the OK stay in the stream", async () => {
    const path = await channel((line, sock) => {
      expect(line).toBe("CONNECT 22");
      sock.write("OK 1073741824\nbanner\n");
      sock.on("data", (c) => sock.write(c));
    });
    const s = await dialGuestPort(path, "hybrid-vsock", 22, { vm: "v", timeoutMs: 5_000 });
    s.write("ping\n");
    const got = await new Promise<string>((res) => {
      let all = "";
      s.on("data", (c: Buffer) => {
        all += c.toString();
        if (all.includes("ping")) res(all);
      });
      // Handed over paused (so nothing is lost before the caller listens); pipe() or resume().
      s.resume();
    });
    expect(got).toBe("banner\nping\n");
    s.destroy();
  });

  it("a closed connection (Firecracker: nothing listens) is CHANNEL_FAILED", async () => {
    const path = await channel((_line, sock) => sock.destroy());
    const e = await refused(dialGuestPort(path, "hybrid-vsock", 23, { vm: "v", timeoutMs: 5_000 }));
    expect(e.code).toBe("CHANNEL_FAILED");
    expect(e.message).toContain("port 23");
  });

  it("the guest's ERR line is CHANNEL_FAILED with its reason", async () => {
    const path = await channel((line, sock) => {
      expect(line).toBe("CONNECT 99");
      sock.write("ERR nothing listens on guest port 99\n");
    }, "HELLO\n");
    const e = await refused(dialGuestPort(path, "virtio-serial", 99, { vm: "v", timeoutMs: 5_000 }));
    expect(e.code).toBe("CHANNEL_FAILED");
    expect(e.message).toContain("nothing listens on guest port 99");
  });

  it("no socket is CHANNEL_FAILED naming it; silence is TIMEOUT; an abort is CANCELLED", async () => {
    const missing = await refused(dialGuestPort(join(dir, "none.sock"), "hybrid-vsock", 22, { vm: "v", timeoutMs: 5_000 }));
    expect(missing.code).toBe("CHANNEL_FAILED");
    expect(missing.message).toContain("none.sock");
    const path = await channel(() => undefined);
    expect((await refused(dialGuestPort(path, "virtio-serial", 22, { vm: "v", timeoutMs: 200 }))).code).toBe("TIMEOUT");
    const ac = new AbortController();
    const p = dialGuestPort(path, "virtio-serial", 22, { vm: "v", timeoutMs: 5_000, signal: ac.signal });
    ac.abort();
    expect((await refused(p)).code).toBe("CANCELLED");
  });
});
