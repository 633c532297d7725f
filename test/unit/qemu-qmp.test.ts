import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { QmpClient, withQmp } from "../../src/adapters/qemu/qmp.js";
import { BangerError } from "../../src/domain/errors.js";

type Handler = (cmd: { execute: string; id?: number; arguments?: unknown }, sock: Socket) => void;

/** A fake QMP server speaking the wire protocol: greeting, then one JSON object per line. */
async function fakeQmp(path: string, handler: Handler, greet = true): Promise<Server> {
  const srv = createServer((sock) => {
    sock.setEncoding("utf8");
    if (greet) sock.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [] } }) + "\n");
    let buf = "";
    sock.on("data", (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const cmd = JSON.parse(line) as { execute: string; id?: number };
        if (cmd.execute === "qmp_capabilities") sock.write(JSON.stringify({ return: {}, id: cmd.id }) + "\n");
        else handler(cmd, sock);
      }
    });
    sock.on("error", () => undefined);
  });
  await new Promise<void>((r) => srv.listen(path, r));
  return srv;
}

const reply = (sock: Socket, obj: unknown): boolean => sock.write(JSON.stringify(obj) + "\n");

describe("QmpClient", () => {
  let dir: string;
  let sockPath: string;
  let srv: Server | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "banger-qmp-"));
    sockPath = join(dir, "qmp.sock");
  });
  afterEach(async () => {
    if (srv) await new Promise((r) => srv!.close(r));
    srv = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("matches replies by id even with events and out-of-order answers in between", async () => {
    const held: { id?: number; sock: Socket }[] = [];
    srv = await fakeQmp(sockPath, (cmd, sock) => {
      if (cmd.execute === "slow") {
        held.push({ id: cmd.id, sock });
        return;
      }
      reply(sock, { event: "RESUME", timestamp: { seconds: 1, microseconds: 2 } });
      // One write holding an event and the reply together, split across no particular boundary.
      sock.write(JSON.stringify({ event: "STOP" }) + "\n" + JSON.stringify({ return: { status: "running", running: true }, id: cmd.id }) + "\n");
      for (const h of held.splice(0)) reply(h.sock, { return: "slow-done", id: h.id });
    });
    const q = await QmpClient.connect(sockPath, 2_000);
    try {
      const slow = q.execute<string>("slow");
      const st = await q.execute<{ status: string }>("query-status");
      expect(st.status).toBe("running");
      expect(await slow).toBe("slow-done");
      expect(q.events.map((e) => e.event)).toEqual(["RESUME", "STOP"]);
    } finally {
      q.close();
    }
  });

  it("turns a QMP error reply into VMM_FAILED naming the command", async () => {
    srv = await fakeQmp(sockPath, (cmd, sock) => reply(sock, { error: { class: "GenericError", desc: "no such device" }, id: cmd.id }));
    const e = await withQmp(sockPath, (q) => q.execute("device_del", { id: "x" }), 2_000).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(BangerError);
    expect((e as BangerError).code).toBe("VMM_FAILED");
    expect((e as BangerError).message).toBe("QMP device_del failed: no such device");
  });

  it("times out a command qemu never answers", async () => {
    srv = await fakeQmp(sockPath, () => undefined);
    const e = await withQmp(sockPath, (q) => q.execute("query-status", undefined, 200), 2_000).catch((err: unknown) => err);
    expect((e as BangerError).code).toBe("TIMEOUT");
  });

  it("rejects pending commands when the connection drops (qemu exiting on quit)", async () => {
    srv = await fakeQmp(sockPath, (_cmd, sock) => sock.destroy());
    const e = await withQmp(sockPath, (q) => q.execute("quit", undefined, 5_000), 2_000).catch((err: unknown) => err);
    expect((e as BangerError).code).toBe("VMM_FAILED");
    expect((e as BangerError).message).toMatch(/closed/);
  });

  it("fails to connect to a missing socket or a silent server", async () => {
    const missing = await QmpClient.connect(join(dir, "absent.sock"), 500).catch((err: unknown) => err);
    expect((missing as BangerError).message).toMatch(/ENOENT/);
    srv = await fakeQmp(sockPath, () => undefined, false);
    const silent = await QmpClient.connect(sockPath, 200).catch((err: unknown) => err);
    expect((silent as BangerError).message).toMatch(/no greeting/);
  });

  it("records an event that arrives after a reply in events", async () => {
    srv = await fakeQmp(sockPath, (cmd, sock) => {
      reply(sock, { return: {}, id: cmd.id });
      setTimeout(() => reply(sock, { event: "SHUTDOWN", data: { guest: true } }), 50);
    });
    await withQmp(
      sockPath,
      async (q) => {
        await q.execute("system_powerdown");
        const deadline = Date.now() + 2_000;
        while (!q.events.some((e) => e.event === "SHUTDOWN") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        expect(q.events.find((e) => e.event === "SHUTDOWN")?.data).toEqual({ guest: true });
      },
      2_000,
    );
  });
});
