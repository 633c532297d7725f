import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { REPO, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";
import { find, parseMetrics } from "../helpers/prom-text.js";

function scrape(socket: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: "/metrics", timeout: 10_000 }, (res) => {
      let body = "";
      res.on("data", (b: Buffer) => (body += b.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.end();
  });
}

const skip = netnsSkipReason() ?? built();
const VSOCK = join(REPO, "build/bin/banger-vsock");

/** A raw upgrade request on bangerd's socket: the status and the JSON error, if any. */
function upgrade(socket: string, path: string, protocol = "banger-stream"): Promise<{ status: number; code?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, headers: { Connection: "Upgrade", Upgrade: protocol }, agent: false });
    req.on("upgrade", (res, sock) => {
      sock.destroy();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body) as { error: { code: string } }).error.code }));
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * bangerd (real SQLite, TAPs, disks) with the fake firecracker, whose modelled guest listens on
 * vsock port 22 with an echo program: the driver's vsock device, the connect route and
 * banger-vsock, end to end, without a guest.
 */
describe.skipIf(skip)(`guest streams through bangerd and the fake firecracker's hybrid vsock${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let art: string;
  let echo: Server;

  beforeAll(async () => {
    art = mkdtempSync(join(tmpdir(), "banger-chan-"));
    // A Unix socket: the fake runs in the daemon's network namespace, the filesystem is shared.
    const echoPath = join(art, "guest-22.sock");
    echo = createServer((s) => {
      // The client may hang up while an echo is in flight (EPIPE): that ends this session, not the test run.
      s.on("error", () => s.destroy());
      s.write("guest says hi\n");
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(echoPath, r));
    // The fake firecracker runs as vmm_user (banger-vmm, which the root daemon creates), and it
    // plays the guest's side of this socket: it must pass the dir and connect, as a real guest would.
    chmodSync(art, 0o711);
    chmodSync(echoPath, 0o666);
    d = await startTestDaemon({
      config: { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 1 },
      env: { ...FAKE_FC_ENV, FAKE_FC_VSOCK_LISTEN: `22=unix:${echoPath}` },
    });
    expect((await d.cli(fakeImageArgs(art, "fake-1"))).stderr).toBe("");
    const r = await d.cli(["vm", "create", "--image", "fake-1", "--name", "fc1", "--no-wait"], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(async () => {
    await d?.cli(["vm", "rm", "fc1", "--force"], { timeoutMs: 60_000 });
    await d?.destroy();
    echo?.close();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it("banger-vsock bridges stdio to the guest port, both ways", async () => {
    const r = await runIn(undefined, VSOCK, ["--socket", d.socket, "-v", "fc1", "22"], { input: "ping\n", timeoutMs: 30_000 });
    // stdin's EOF half-closes the stream; the echo has answered by then or answers before it closes.
    expect(r.stdout.startsWith("guest says hi\n")).toBe(true);
    expect(r.stderr).toMatch(/fc1:22 via channel \(hybrid-vsock\)/);
    expect(r.code).toBe(0);
    // The stream is counted in the metrics: one session, now closed, and its bytes both ways.
    let m = parseMetrics(await scrape(d.socket));
    for (let i = 0; i < 50 && m.get("banger_guest_channel_sessions")?.metrics[0]?.value !== "0"; i++) {
      await new Promise((res) => setTimeout(res, 100));
      m = parseMetrics(await scrape(d.socket));
    }
    expect(m.get("banger_guest_channel_sessions_total")?.metrics[0]?.value).toBe("1");
    expect(m.get("banger_guest_channel_sessions")?.metrics[0]?.value).toBe("0");
    expect(find(m.get("banger_guest_channel_bytes_total"), { direction: "to_guest" })?.value).toBe(String(Buffer.byteLength("ping\n")));
    expect(find(m.get("banger_guest_channel_bytes_total"), { direction: "from_guest" })?.value).toBe(String(Buffer.byteLength(r.stdout)));
  });

  it("the route validates the port, the VM, the protocol and the state, with coded errors", async () => {
    expect(await upgrade(d.socket, "/v1/vms/fc1/connect?port=22")).toEqual({ status: 101 });
    expect(await upgrade(d.socket, "/v1/vms/fc1/connect?port=0")).toEqual({ status: 400, code: "BAD_REQUEST" });
    expect(await upgrade(d.socket, "/v1/vms/fc1/connect?port=22;ls")).toEqual({ status: 400, code: "BAD_REQUEST" });
    expect(await upgrade(d.socket, "/v1/vms/fc1/connect")).toEqual({ status: 400, code: "BAD_REQUEST" });
    expect(await upgrade(d.socket, "/v1/vms/nope/connect?port=22")).toEqual({ status: 404, code: "VM_NOT_FOUND" });
    expect(await upgrade(d.socket, "/v1/vms/fc1/connect?port=22", "websocket")).toEqual({ status: 400, code: "BAD_REQUEST" });
    // Nothing listens on 23 in the modelled guest: Firecracker closes, bangerd says so.
    expect(await upgrade(d.socket, "/v1/vms/fc1/connect?port=23")).toEqual({ status: 502, code: "CHANNEL_FAILED" });
    const vsock = await runIn(undefined, VSOCK, ["--socket", d.socket, "fc1", "23"], { timeoutMs: 30_000 });
    expect(vsock.code).toBe(1);
    expect(vsock.stderr).toContain("CHANNEL_FAILED");
  });

  it("a stopped VM has no stream", async () => {
    expect((await d.cli(["vm", "stop", "fc1"], { timeoutMs: 120_000 })).code).toBe(0);
    expect(await upgrade(d.socket, "/v1/vms/fc1/connect?port=22")).toEqual({ status: 409, code: "VM_NOT_RUNNING" });
  });
});
