import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { built, startTestDaemon, type CliResult, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";

const skip = netnsSkipReason() ?? built();

interface ErrorOut {
  error: { code: string; message: string; hint?: string };
}

/**
 * `vm ssh`, `vm exec` and `vm logs --follow` against a VM that cannot answer: bangerd refuses
 * before any ssh runs, with the VM's state and the next step. The fake Firecracker has no guest,
 * so an ssh that got as far as connecting would fail differently (and only after its timeout).
 */
describe.skipIf(skip)(`guest commands on a VM that is not running${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let art: string;
  const commands = (name: string) => [
    ["vm", "ssh", name],
    ["vm", "ssh", "--vsock", name],
    ["vm", "exec", name, "true"],
    ["vm", "logs", "--follow", name],
  ];
  const refused = async (args: string[]) => {
    const t0 = performance.now();
    const r = await d.cli(["--json", ...args], { timeoutMs: 60_000 });
    const ms = performance.now() - t0;
    console.log(`banger ${args.join(" ")}: exit ${r.code} in ${ms.toFixed(0)} ms`);
    return { ...r, body: r.json<ErrorOut>() } as CliResult & { body: ErrorOut };
  };

  beforeAll(async () => {
    // ssh_timeout_s: a create without --no-wait stays in `creating` (wait-ssh) this long against the fake.
    d = await startTestDaemon({ config: { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 1, ssh_timeout_s: 120 }, env: FAKE_FC_ENV });
    art = mkdtempSync(join(tmpdir(), "banger-guest-err-"));
    expect((await d.cli(fakeImageArgs(art, "fake-1"))).code).toBe(0);
  });
  afterAll(async () => {
    const ns = d?.ns;
    await d?.destroy();
    await ns?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it("a stopped VM: VM_NOT_RUNNING, its state, and `banger vm start`", async () => {
    expect((await d.cli(["vm", "create", "--image", "fake-1", "--name", "alp", "--no-wait"])).code).toBe(0);
    expect((await d.cli(["vm", "stop", "alp"], { timeoutMs: 120_000 })).code).toBe(0);
    for (const args of commands("alp")) {
      const r = await refused(args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.body.error.code).toBe("VM_NOT_RUNNING");
      expect(r.body.error.message).toMatch(/^VM alp is stopped; /);
      expect(r.body.error.hint).toBe("start it with `banger vm start alp`");
    }
    // Without --follow the console of a stopped VM is still there to read.
    expect((await d.cli(["vm", "logs", "alp"])).code).toBe(0);
    // Humans get the same on stderr.
    const human = await d.cli(["vm", "ssh", "alp"]);
    expect(human.stderr).toBe("error: VM alp is stopped; ssh needs it running\nhint: start it with `banger vm start alp`\n");
    expect((await d.cli(["vm", "rm", "alp"])).code).toBe(0);
  });

  it("a VM being created: VM_NOT_RUNNING and wait for the create", async () => {
    const create = d.cli(["vm", "create", "--image", "fake-1", "--name", "mid"], { timeoutMs: 180_000 });
    let state = "";
    for (let i = 0; i < 300 && state !== "creating"; i++) {
      const r = await d.cli(["--json", "vm", "show", "mid"]);
      state = r.code === 0 ? r.json<{ vm: { state: string } }>().vm.state : "";
      if (state !== "creating") await sleep(100);
    }
    expect(state).toBe("creating");
    try {
      for (const args of commands("mid")) {
        const r = await refused(args);
        expect(r.code, args.join(" ")).toBe(1);
        expect(r.body.error).toMatchObject({ code: "VM_NOT_RUNNING", message: expect.stringMatching(/^VM mid is creating; /) });
        expect(r.body.error.hint).toMatch(/^wait for its create to finish/);
      }
    } finally {
      expect((await d.cli(["vm", "rm", "--force", "mid"], { timeoutMs: 120_000 })).code).toBe(0);
      await create;
    }
  });

  it("a removed VM: VM_NOT_FOUND and where to look", async () => {
    expect((await d.cli(["vm", "create", "--image", "fake-1", "--name", "gone", "--no-wait"])).code).toBe(0);
    expect((await d.cli(["vm", "rm", "--force", "gone"])).code).toBe(0);
    for (const args of commands("gone")) {
      const r = await refused(args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.body.error).toEqual({ code: "VM_NOT_FOUND", message: "no VM named gone", hint: "`banger vm ls` lists VMs" });
    }
  });
});
