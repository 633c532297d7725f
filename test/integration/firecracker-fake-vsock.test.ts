import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SocketGuestChannel } from "../../src/adapters/channel/guest-channel.js";
import { BangerError } from "../../src/domain/errors.js";
import { FAKE_FC_ENV, runFake, scratch, startFake, type RunningFake } from "../fakes/firecracker/testkit.js";

const log = { info() {}, warn() {}, error() {}, debug() {} } as never;

/** Connect to the vsock UDS, send `request`, and collect everything until the fake closes (or `wait` ms pass). */
function exchange(uds: string, request: string, opts: { send?: string; wait?: number } = {}): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(uds);
    let data = "";
    let sent = false;
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ data, closed: false });
    }, opts.wait ?? 3_000);
    s.on("connect", () => s.write(request));
    s.on("data", (c: Buffer) => {
      data += c.toString("latin1");
      if (opts.send && !sent && data.includes("\n")) {
        sent = true;
        s.write(opts.send);
      }
    });
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ data, closed: true });
    });
  });
}

describe(`the fake firecracker's hybrid vsock${FAKE_FC_ENV.FAKE_FC_SPEC ? " (spec-less mode)" : ""}`, () => {
  let tmp: ReturnType<typeof scratch>;
  let fake: RunningFake;
  let echo: Server;
  let hostSide: Server;
  let uds: string;
  const guestPrograms: string[] = [];
  const guestConnectPort = 20_000 + (process.pid % 20_000);

  beforeAll(async () => {
    tmp = scratch("fcvsock-");
    // The modelled guest program on vsock port 22: an echo server that says hello first.
    const echoPath = join(tmp.dir, "guest-22.sock");
    echo = createServer((s) => {
      s.write("hello from the guest\n");
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(echoPath, r));
    fake = await startFake(tmp.dir, {
      env: { ...FAKE_FC_ENV, FAKE_FC_VSOCK_LISTEN: `22=unix:${echoPath}`, FAKE_FC_VSOCK_GUEST: `5000=tcp:127.0.0.1:${guestConnectPort}` },
    });
    uds = join(tmp.dir, "v.sock");
    expect((await fake.request("PUT", "/boot-source", { kernel_image_path: tmp.file("vmlinux") })).status).toBe(204);
    expect((await fake.request("PUT", "/vsock", { guest_cid: 3, uds_path: uds })).status).toBe(204);
    // A host program listening for guest-initiated connections to port 5000.
    hostSide = createServer((s) => {
      s.once("data", (c: Buffer) => {
        guestPrograms.push(c.toString());
        s.end("host got it\n");
      });
    });
    await new Promise<void>((r) => hostSide.listen(`${uds}_5000`, r));
  });

  afterAll(async () => {
    await fake?.stop();
    echo?.close();
    hostSide?.close();
    tmp?.cleanup();
  });

  it("before InstanceStart no guest listens: the connection is closed without an answer", async () => {
    expect(await exchange(uds, "CONNECT 22\n")).toEqual({ data: "", closed: true });
    expect((await fake.request("PUT", "/actions", { action_type: "InstanceStart" })).status).toBe(204);
  });

  it("CONNECT <port> to a listener answers OK <host port> from 2^30 up, then carries bytes both ways", async () => {
    const r = await exchange(uds, "CONNECT 22\n", { send: "ping\n", wait: 1_500 });
    expect(r.data).toMatch(/^OK (\d+)\nhello from the guest\nping\n$/);
    expect(Number(/^OK (\d+)/.exec(r.data)![1])).toBeGreaterThanOrEqual(2 ** 30);
    const again = await exchange(uds, "CONNECT 22\n", { wait: 1_000 });
    expect(Number(/^OK (\d+)/.exec(again.data)![1])).toBeGreaterThan(Number(/^OK (\d+)/.exec(r.data)![1]));
  });

  it("parses the line as Firecracker does: any case, extra words ignored", async () => {
    expect((await exchange(uds, "connect 22\n", { wait: 1_000 })).data).toMatch(/^OK \d+\n/);
    expect((await exchange(uds, "Connect  22 extra\n", { wait: 1_000 })).data).toMatch(/^OK \d+\n/);
  });

  it("closes without a word: no listener, a malformed line, no newline within 32 bytes", async () => {
    for (const bad of ["CONNECT 23\n", "CONNECT\n", "CONNECT abc\n", "OPEN 22\n", "CONNECT 4294967296\n", `CONNECT ${"0".repeat(40)}22\n`]) {
      expect(await exchange(uds, bad), bad).toEqual({ data: "", closed: true });
    }
  });

  it("a guest-initiated connection reaches <uds_path>_<port>", async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(guestConnectPort, "127.0.0.1", () => s.write("from the guest\n"));
      let data = "";
      s.on("data", (c: Buffer) => (data += c.toString()));
      s.on("close", () => resolve(data));
      s.on("error", reject);
    });
    expect(reply).toBe("host got it\n");
    expect(guestPrograms).toEqual(["from the guest\n"]);
  });

  it("the channel adapter opens guest ports through it and reports a missing listener as CHANNEL_FAILED", async () => {
    // The driver's layout: the VM dir holds vsock.sock.
    const vmDir = mkdtempSync(join(tmpdir(), "fcvm-"));
    try {
      symlinkSync(uds, join(vmDir, "vsock.sock"));
      const ch = new SocketGuestChannel({ log });
      const target = { name: "alpha", vmm: "firecracker" as const, dir: vmDir, vsockCid: 3 };
      const { stream, via } = await ch.open(target, 22, { timeoutMs: 5_000 });
      expect(via).toBe("hybrid-vsock");
      const first = await new Promise<string>((r) => {
        stream.once("data", (c: Buffer) => r(c.toString()));
        stream.resume();
      });
      expect(first).toBe("hello from the guest\n");
      stream.destroy();
      const e = await ch.open(target, 23, { timeoutMs: 5_000 }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(BangerError);
      expect((e as BangerError).code).toBe("CHANNEL_FAILED");
    } finally {
      rmSync(vmDir, { recursive: true, force: true });
    }
  });

  it("rejects a bad FAKE_FC_VSOCK_LISTEN at start", async () => {
    const r = await runFake(["--api-sock", join(tmp.dir, "x.sock")], { ...FAKE_FC_ENV, FAKE_FC_VSOCK_LISTEN: "22=ftp:somewhere" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("FAKE_FC_VSOCK_LISTEN");
  });
});
