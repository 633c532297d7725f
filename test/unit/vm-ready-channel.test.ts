import { describe, expect, it } from "vitest";
import { waitReady } from "../../src/app/vm-ready.js";
import { BangerError } from "../../src/domain/errors.js";
import type { Image, Vm } from "../../src/domain/types.js";
import type { Files } from "../../src/ports/files.js";
import type { Guest, SshTarget } from "../../src/ports/guest.js";
import type { GuestChannel, ReadyEvent } from "../../src/ports/channel.js";
import pino from "pino";

const vm = (nat: boolean) => ({ id: "id1", name: "v1", vmm: "qemu", ip: "172.30.0.5", nat, dir: "/state/vms/v1" }) as Vm;
const image = { guest: { services: [] } } as unknown as Image;

/** A guest whose SSH answers only on the paths listed; the others wait until cancelled. */
function guest(answers: ("ip" | "channel")[], seen: SshTarget[]): Guest {
  return {
    waitSsh: (target, _ms, signal) => {
      seen.push(target);
      const path = target.proxyCommand ? "channel" : "ip";
      if (answers.includes(path)) return Promise.resolve();
      return new Promise((_res, rej) => signal?.addEventListener("abort", () => rej(signal.reason as Error), { once: true }));
    },
    waitPort: () => Promise.resolve(),
    exec: () => Promise.resolve({ code: 0, stdout: "", stderr: "" }),
    httpStatus: () => Promise.reject(new Error("unused: the image has no services")),
  };
}

/** A channel whose READY stream is scripted per call; every call is recorded. */
function channel(script: (ports: number[]) => Promise<AsyncIterable<ReadyEvent>>, calls: number[][] = []): GuestChannel {
  return {
    open: () => Promise.reject(new Error("unused")),
    run: () => Promise.reject(new Error("unused")),
    ready: (_t, ports) => {
      calls.push(ports);
      return script(ports);
    },
    release: () => undefined,
  };
}

const unsupported = channel(() => Promise.reject(new BangerError("CHANNEL_UNSUPPORTED", "not over vsock")));

function deps(g: Guest, channelProxy?: string[], o: { ch?: GuestChannel; readyPush?: boolean } = {}) {
  return {
    guest: g,
    keys: { sshKey: () => Promise.resolve("/k/id"), hostKey: () => Promise.reject(new Error("unused")) },
    files: {} as Files,
    channel: o.ch ?? unsupported,
    log: pino({ level: "silent" }),
    config: { sshTimeoutMs: 1_000, serviceTimeoutMs: 1_000, channelProxy, secretsDir: "/state/secrets", readyPush: o.readyPush ?? true },
  };
}

describe("wait-ssh: the IP, or for a VM without NAT the guest channel, whichever answers", () => {
  const proxy = ["/usr/bin/node", "/b/banger-vsock.cjs", "--socket", "/run/b.sock"];

  it("a VM without NAT whose network is dead answers over the channel, through banger-vsock as ProxyCommand", async () => {
    const seen: SshTarget[] = [];
    const r = await waitReady(deps(guest(["channel"], seen), proxy), vm(false), image, new AbortController().signal);
    expect(await r.ssh()).toBe("via channel");
    expect(seen.find((t) => t.proxyCommand)?.proxyCommand).toBe("'/usr/bin/node' '/b/banger-vsock.cjs' '--socket' '/run/b.sock' 'v1' '22'");
  });

  it("says via ip when the IP answers; a VM with NAT, or no banger-vsock, only tries the IP", async () => {
    expect(await (await waitReady(deps(guest(["ip"], []), proxy), vm(false), image, new AbortController().signal)).ssh()).toBe("via ip");
    const seen: SshTarget[] = [];
    expect(await (await waitReady(deps(guest(["ip", "channel"], seen), proxy), vm(true), image, new AbortController().signal)).ssh()).toBe("via ip");
    expect(await (await waitReady(deps(guest(["ip"], seen)), vm(false), image, new AbortController().signal)).ssh()).toBe("via ip");
    expect(seen.every((t) => !t.proxyCommand)).toBe(true);
  });

  it("a cancelled create cancels both paths with its reason", async () => {
    const ac = new AbortController();
    const p = (await waitReady(deps(guest([], []), proxy), vm(false), image, ac.signal)).ssh();
    ac.abort(new BangerError("CANCELLED", "client went away"));
    await expect(p).rejects.toMatchObject({ code: "CANCELLED", message: "client went away" });
  });
});

describe("readiness pushed by banger-agent, polling where it cannot be", () => {
  const agentImage = (services: { name: string; port: number }[] = []) => ({ guest: { os: "debian", agent: true, services } }) as unknown as Image;
  async function* events(list: ReadyEvent[]): AsyncGenerator<ReadyEvent> {
    for (const e of list) yield e;
  }
  /** A guest whose SSH logins and port checks are counted. */
  function counting() {
    const n = { ssh: 0, port: 0 };
    const g: Guest = {
      ...guest(["ip"], []),
      waitSsh: () => (n.ssh++, Promise.resolve()),
      waitPort: () => (n.port++, Promise.resolve()),
    };
    return { g, n };
  }

  it("an image with the agent waits for READY on port 22, then logs in once over SSH", async () => {
    const calls: number[][] = [];
    const { g, n } = counting();
    const ch = channel(() => Promise.resolve(events([{ kind: "listen", port: 22 }, { kind: "ready" }])), calls);
    const r = await waitReady(deps(g, undefined, { ch }), vm(true), agentImage(), new AbortController().signal);
    expect(await r.ssh()).toMatch(/^via ip; pushed by banger-agent in \d+ ms$/);
    expect(calls).toEqual([[22]]);
    expect(n.ssh).toBe(1);
  });

  it("wait-services asks for every service port at once, then still checks each one", async () => {
    const calls: number[][] = [];
    const { g, n } = counting();
    const ch = channel(() => Promise.resolve(events([{ kind: "ready" }])), calls);
    const img = agentImage([
      { name: "ssh", port: 22 },
      { name: "web", port: 8080 },
      { name: "db", port: 5432 },
    ]);
    const d = { ...deps(g, undefined, { ch }), files: { stat: () => Promise.resolve(undefined) } as unknown as Files };
    const r = await waitReady(d, vm(true), img, new AbortController().signal);
    expect(await r.services()).toMatch(/^web:8080, db:5432; pushed by banger-agent in \d+ ms$/);
    expect(calls).toEqual([[8080, 5432]]);
    expect(n.port).toBe(2);
  });

  it("falls back to polling when the transport cannot push (CHANNEL_UNSUPPORTED) or the stream ends early", async () => {
    const { g, n } = counting();
    const r = await waitReady(deps(g, undefined, { ch: unsupported }), vm(true), agentImage(), new AbortController().signal);
    expect(await r.ssh()).toBe("via ip; polled (CHANNEL_UNSUPPORTED: not over vsock)");
    const ended = channel(() => Promise.resolve(events([{ kind: "listen", port: 22 }])));
    const r2 = await waitReady(deps(g, undefined, { ch: ended }), vm(true), agentImage(), new AbortController().signal);
    expect(await r2.ssh()).toBe("via ip; polled (the agent's stream ended before READY)");
    expect(n.ssh).toBe(2);
  });

  it("never asks the guest without the agent, with ready_push = false, or for a restored clone", async () => {
    const calls: number[][] = [];
    const ch = channel(() => Promise.resolve(events([{ kind: "ready" }])), calls);
    const { g } = counting();
    expect(await (await waitReady(deps(g, undefined, { ch }), vm(true), image, new AbortController().signal)).ssh()).toBe("via ip");
    expect(await (await waitReady(deps(g, undefined, { ch, readyPush: false }), vm(true), agentImage(), new AbortController().signal)).ssh()).toBe("via ip");
    expect(await (await waitReady(deps(g, undefined, { ch }), vm(true), agentImage(), new AbortController().signal, { restored: true })).ssh()).toBe(
      "via ip; services restarted",
    );
    expect(calls).toEqual([]);
  });

  it("a create cancelled while it waits for READY is cancelled, not turned into polling", async () => {
    const ac = new AbortController();
    const ch = channel(
      () =>
        new Promise((_res, rej) => {
          ac.signal.addEventListener("abort", () => rej(new BangerError("CANCELLED", "the open was cancelled")), { once: true });
        }),
    );
    const { g, n } = counting();
    const p = (await waitReady(deps(g, undefined, { ch }), vm(true), agentImage(), ac.signal)).ssh();
    ac.abort(new BangerError("CANCELLED", "client went away"));
    await expect(p).rejects.toMatchObject({ code: "CANCELLED", message: "client went away" });
    expect(n.ssh).toBe(0);
  });
});
