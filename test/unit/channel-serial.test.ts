import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SocketGuestChannel } from "../../src/adapters/channel/guest-channel.js";
import { BangerError } from "../../src/domain/errors.js";

const log = { info() {}, warn() {}, error() {}, debug() {} } as never;

/**
 * QEMU's agent.sock with banger-channel behind it, as far as the host sees: one client at a
 * time, "HELLO\n", then "CONNECT <port>\n" answered with "OK <port>\n" and an echo.
 */
function agentSocket(path: string): Promise<{ server: Server; sessions: () => number }> {
  let sessions = 0;
  const server = createServer((s: Socket) => {
    sessions++;
    s.write("HELLO\n");
    s.once("data", (c: Buffer) => {
      const port = /^CONNECT (\d+)\n/.exec(c.toString())?.[1];
      s.write(port ? `OK ${port}\n` : "ERR malformed request\n");
      s.pipe(s);
    });
  });
  return new Promise((r) => server.listen(path, () => r({ server, sessions: () => sessions })));
}

describe("the virtio-serial channel: one session at a time per VM", () => {
  let dir: string;
  let server: Server;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "serial-"));
    server = (await agentSocket(join(dir, "agent.sock"))).server;
  });
  afterEach(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const target = () => ({ name: "q1", vmm: "qemu" as const, dir, vsockCid: 5 });
  const channel = () => new SocketGuestChannel({ log, vhostVsock: () => false, serialBusyWaitMs: 300 });

  it("a second open while a session runs fails with CHANNEL_BUSY; after it ends the next one opens", async () => {
    const ch = channel();
    const first = await ch.open(target(), 22, { timeoutMs: 5_000 });
    expect(first.via).toBe("virtio-serial");
    const busy = await ch.open(target(), 22, { timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(BangerError);
    expect((busy as BangerError).code).toBe("CHANNEL_BUSY");
    first.stream.destroy();
    await new Promise((r) => setImmediate(r));
    const next = await ch.open(target(), 22, { timeoutMs: 5_000 });
    expect(next.via).toBe("virtio-serial");
    next.stream.destroy();
  });

  it("a second open waits for a session that ends within the wait", async () => {
    const ch = channel();
    const first = await ch.open(target(), 22, { timeoutMs: 5_000 });
    const second = ch.open(target(), 22, { timeoutMs: 5_000 });
    setTimeout(() => first.stream.destroy(), 50);
    const s = await second;
    const echoed = await new Promise<string>((r) => {
      s.stream.once("data", (c: Buffer) => r(c.toString()));
      s.stream.resume();
      s.stream.write("over the serial port\n");
    });
    expect(echoed).toBe("over the serial port\n");
    s.stream.destroy();
  });

  it("a failed open releases the channel", async () => {
    const ch = channel();
    const gone = { ...target(), dir: join(dir, "missing") };
    expect(((await ch.open(gone, 22, { timeoutMs: 5_000 }).catch((e: unknown) => e)) as BangerError).code).toBe("CHANNEL_FAILED");
    expect(((await ch.open(gone, 22, { timeoutMs: 5_000 }).catch((e: unknown) => e)) as BangerError).code).toBe("CHANNEL_FAILED");
  });
});
