import { describe, expect, it } from "vitest";
import { LinuxNetwork } from "../../src/adapters/net/linux-network.js";
import { BangerError } from "../../src/domain/errors.js";
import type { Runner, RunOptions, RunResult } from "../../src/ports/runner.js";

/** Answers the few queries ensureHost makes as a host with an existing bridge and no default route. */
class ScriptedRunner implements Runner {
  calls: Array<{ line: string; opts: RunOptions }> = [];
  async run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const line = [cmd, ...args].join(" ");
    this.calls.push({ line, opts });
    const ok = (stdout = ""): RunResult => ({ code: 0, stdout, stderr: "" });
    if (line === "ip -d -j link show dev banger0") {
      return ok(JSON.stringify([{ ifname: "banger0", flags: ["UP"], linkinfo: { info_kind: "bridge" } }]));
    }
    if (line === "ip -j -4 addr show dev banger0") {
      return ok(JSON.stringify([{ addr_info: [{ family: "inet", local: "172.30.0.1", prefixlen: 24 }] }]));
    }
    if (line === "ip -j -4 route show default") return ok("[]");
    if (line === "ip -j link show")
      return ok(
        JSON.stringify([
          { ifname: "lo", flags: [] },
          { ifname: "eth0", flags: [] },
        ]),
      );
    return ok();
  }
}

const log = { debug() {}, info() {}, warn() {} };
const opts = (runner: Runner) => ({ runner, bridge: "banger0", subnet: "172.30.0.0/24", poolSize: 0, natAllow: [], log });

describe("LinuxNetwork (scripted runner)", () => {
  it("gives every host command a timeout and feeds nft one script", async () => {
    const r = new ScriptedRunner();
    const net = new LinuxNetwork(opts(r));
    await net.ensureHost();
    for (const c of r.calls) expect(c.opts.timeoutMs, c.line).toBeGreaterThan(0);
    const nft = r.calls.filter((c) => c.line.startsWith("nft"));
    expect(nft.map((c) => c.line)).toEqual(["nft -f -"]);
    expect(String(nft[0]!.opts.input)).toMatch(/add rule inet banger input iifname "banger0" drop/);
    // the existing bridge already has its address: no change requested
    expect(r.calls.some((c) => c.line.startsWith("ip addr replace"))).toBe(false);
  });

  it("refuses NAT without an uplink, naming the config key", async () => {
    const net = new LinuxNetwork(opts(new ScriptedRunner()));
    await net.ensureHost();
    await expect(net.enableNat("172.30.0.5")).rejects.toMatchObject({ code: "NETWORK_FAILED", hint: expect.stringMatching(/uplink/) });
  });

  it("validates addresses and device names before running anything", async () => {
    const r = new ScriptedRunner();
    const net = new LinuxNetwork(opts(r));
    await expect(net.enableNat("172.30.0.1")).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(net.enableNat("1.2.3.4 } ; flush ruleset ; {")).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(net.disableNat("nope")).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(net.releaseTap("eth0", "vm")).rejects.toMatchObject({ code: "NETWORK_FAILED" });
    expect(r.calls).toEqual([]);
    expect(() => new LinuxNetwork({ ...opts(r), bridge: "bad name" })).toThrow(BangerError);
    expect(() => new LinuxNetwork({ ...opts(r), subnet: "172.30.0.0/33" })).toThrow(BangerError);
  });

  it("turns failing host commands into NETWORK_FAILED with a hint", async () => {
    const failing: Runner = {
      run: async () => {
        throw new BangerError("COMMAND_FAILED", "ip exited 2: Operation not permitted");
      },
    };
    const net = new LinuxNetwork(opts(failing));
    const err = await net.ensureHost().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "NETWORK_FAILED", hint: expect.stringMatching(/root/) });
  });
});
