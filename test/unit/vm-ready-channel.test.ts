import { describe, expect, it } from "vitest";
import { waitReady } from "../../src/app/vm-ready.js";
import { BangerError } from "../../src/domain/errors.js";
import type { Image, Vm } from "../../src/domain/types.js";
import type { Files } from "../../src/ports/files.js";
import type { Guest, SshTarget } from "../../src/ports/guest.js";

const vm = (nat: boolean) => ({ name: "v1", ip: "172.30.0.5", nat, dir: "/state/vms/v1" }) as Vm;
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

function deps(g: Guest, channelProxy?: string[]) {
  return {
    guest: g,
    keys: { sshKey: () => Promise.resolve("/k/id"), hostKey: () => Promise.reject(new Error("unused")) },
    files: {} as Files,
    config: { sshTimeoutMs: 1_000, serviceTimeoutMs: 1_000, channelProxy, secretsDir: "/state/secrets" },
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
