import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { built, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { builtDebianImage, guestSkipReason, registerArgs } from "../helpers/guest-image.js";
import { hostLeftovers } from "../helpers/leaks.js";
import { FAKE_FC, FAKE_FC_ENV, readCalls } from "../fakes/firecracker/testkit.js";

const skip = built() ?? guestSkipReason();

/**
 * The Firecracker driver's whole path, readiness included, against a real
 * guest: the spec-enforcing fake validates every API call and, on
 * InstanceStart, boots the configured kernel/initrd/drives/TAP with QEMU.
 */
describe.skipIf(skip)(`e2e: firecracker driver → strict fake → real guest${skip ? ` (skipped: ${skip})` : ""}`, () => {
  let d: TestDaemon;

  beforeAll(async () => {
    d = await startTestDaemon({
      config: { vmm: "firecracker", firecracker_bin: FAKE_FC, memory_mib: 1024 },
      env: { ...FAKE_FC_ENV, FAKE_FC_BOOT: "qemu", FAKE_FC_CHECK_TAP: "1" },
    });
    const reg = await d.cli(registerArgs(builtDebianImage()!, "debian-fc-1", { services: false }), { timeoutMs: 300_000 });
    expect(reg.stderr).toBe("");
  });
  afterAll(async () => {
    await d?.destroy();
  });

  it("creates a VM whose every API call the fake accepted, and SSH answers", async () => {
    const r = await d.cli(["--json", "vm", "create", "--image", "debian-fc-1", "--name", "fc1"], { timeoutMs: 600_000 });
    if (r.code !== 0) console.error(r.stderr);
    expect(r.code).toBe(0);
    const { vm } = r.json<{ vm: { dir: string; vmm: string } }>();
    expect(vm.vmm).toBe("firecracker");
    const calls = readCalls(join(vm.dir, "fc.sock.calls.jsonl"));
    expect(calls.filter((c) => c.status >= 400)).toEqual([]);
    const boot = calls.find((c) => c.path === "/boot-source")!.body as { boot_args: string };
    expect(boot.boot_args).toMatch(/pci=off/);
    expect(boot.boot_args).toMatch(/ip=172\.30\.0\.\d+::172\.30\.0\.1:255\.255\.255\.0:fc1:eth0:off/);
    const ssh = await d.cli(["vm", "ssh", "fc1", "--", "hostname"]);
    expect(ssh.stdout.trim()).toBe("fc1");
    // The hybrid vsock (CONNECT 22 on vsock.sock): the fake reaches the guest's banger-channel.
    const vsock = await d.cli(["vm", "ssh", "--vsock", "fc1", "--", "hostname"], { timeoutMs: 120_000 });
    expect(vsock.stderr).toBe("");
    expect(vsock.stdout.trim()).toBe("fc1");
  });

  it("stops by an in-guest reboot, which ends Firecracker, without waiting out a timeout; removes cleanly", async () => {
    const stop = await d.cli(["vm", "stop", "fc1"], { timeoutMs: 120_000 });
    expect(stop.stderr).toBe("");
    const show = (await d.cli(["--json", "vm", "show", "fc1"])).json<{
      vm: { dir: string; state: string };
      events: { op: string; stage: string; detail?: string }[];
    }>();
    const dir = show.vm.dir;
    expect(show.vm.state).toBe("stopped");
    const stages = show.events.filter((e) => e.op === "stop");
    expect(stages.find((e) => e.stage === "guest-stop")?.detail).toBe("reboot over SSH");
    // The guest's reboot ended the process inside the grace period: no Ctrl-Alt-Del, no signal.
    expect(stages.find((e) => e.stage === "vmm-stop")?.detail).toMatch(/ended by guest/);
    const calls = readCalls(join(dir, "fc.sock.calls.jsonl"));
    expect(calls.filter((c) => c.path === "/actions" && (c.body as { action_type: string }).action_type === "SendCtrlAltDel")).toEqual([]);
    expect((await d.cli(["vm", "rm", "fc1"])).code).toBe(0);
    expect(existsSync(dir)).toBe(false);
    const left = await hostLeftovers(d.ns);
    expect(left.vmmProcesses).toEqual([]);
    expect(left.nonPoolTaps).toEqual([]);
  });
});
