import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStageFeed } from "../../src/cli/stage-events.js";
import type { LifecycleEvent } from "../../src/domain/types.js";
import { fakeImageArgs } from "../helpers/artifacts.js";
import { BANGER, built, runIn, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { netnsSkipReason } from "../helpers/netns.js";
import { FAKE_FC, FAKE_FC_ENV } from "../fakes/firecracker/testkit.js";

const skip = netnsSkipReason() ?? built();

/** The CLI's stage lines come pushed on GET /v1/events, against a real bangerd with the fake Firecracker. */
describe.skipIf(skip)(`CLI stage progress from the event stream${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;
  let art: string;

  beforeAll(async () => {
    d = await startTestDaemon({ config: { vmm: "firecracker", firecracker_bin: FAKE_FC, tap_pool_size: 1, ssh_timeout_s: 5 }, env: FAKE_FC_ENV });
    art = mkdtempSync(join(tmpdir(), "banger-sse-art-"));
    expect((await d.cli(fakeImageArgs(art, "fake-1"))).code).toBe(0);
  });
  afterAll(async () => {
    const ns = d?.ns;
    await d?.destroy();
    await ns?.destroy();
    if (art) rmSync(art, { recursive: true, force: true });
  });

  it("follows a create with a generated name: learns the name and gets each stage once, in order", async () => {
    const got: LifecycleEvent[] = [];
    const feed = await openStageFeed(d.socket, "create", undefined, (e) => got.push(e));
    expect(feed).toBeDefined();
    const made = await d.cli(["--json", "vm", "create", "--image", "fake-1", "--no-wait"]);
    expect(made.code, made.stderr).toBe(0);
    const name = made.json<{ vm: { name: string } }>().vm.name;
    await feed!.close();
    expect(feed!.name()).toBe(name);
    const stages = got.map((e) => e.stage);
    expect(stages).toContain("spawn-vmm");
    expect(new Set(stages).size).toBe(stages.length);
    expect(got.every((e) => e.vmName === name && e.op === "create")).toBe(true);
    // The same stages the VM's history keeps, in the same order.
    const history = (await d.cli(["--json", "vm", "show", name])).json<{ events: LifecycleEvent[] }>().events;
    expect(stages).toEqual(history.filter((e) => e.op === "create" && e.stage !== "total").map((e) => e.stage));
    expect((await d.cli(["vm", "rm", "--force", name])).code).toBe(0);
  });

  it("prints the stage lines on a terminal, as before, for a create that fails at wait-ssh", async () => {
    // script(1) gives the CLI a terminal, which is when it prints stages.
    const r = await runIn(d.ns, "script", ["-qec", `${BANGER} vm create --image fake-1 --name tty-vm`, "/dev/null"], {
      env: { BANGER_CONFIG: d.configPath, XDG_DATA_HOME: join(d.dir, "data") },
      timeoutMs: 120_000,
    });
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/✓ spawn-vmm\s+\d+(\.\d+)? m?s/);
    // The failed stage and its undos arrive just behind the answer; the stream still shows them.
    expect(r.stdout).toMatch(/✗ wait-ssh/);
    expect(r.stdout).toMatch(/↩ undo:tap/);
    expect(r.stdout.match(/✓ spawn-vmm/g)).toHaveLength(1);
    expect((await d.cli(["--json", "vm", "ls"])).json<{ vms: unknown[] }>().vms).toEqual([]);
  });
});
