import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { setTimeout as sleep } from "node:timers/promises";
import { FAKE_FC_ENV, readCalls, scratch, startFake, type RunningFake } from "../fakes/firecracker/testkit.js";

// The fake's model of a guest's power state, which is what makes a Firecracker stop slow or
// fast: Firecracker has no power-off (a halted guest leaves the process running and ignores
// Ctrl-Alt-Del) and exits when the guest resets. Runs with or without the spec.
describe(`fake firecracker guest power model${FAKE_FC_ENV.FAKE_FC_SPEC ? " (spec-less mode)" : ""}`, () => {
  let tmp: ReturnType<typeof scratch>;
  let fc: RunningFake | undefined;

  beforeEach(() => {
    tmp = scratch("fcpower-");
  });
  afterEach(async () => {
    await fc?.stop();
    fc = undefined;
    tmp.cleanup();
  });

  async function started(env: Record<string, string> = {}): Promise<RunningFake> {
    fc = await startFake(tmp.dir, { env: { ...FAKE_FC_ENV, ...env } });
    expect((await fc.request("PUT", "/boot-source", { kernel_image_path: tmp.file("vmlinux") })).status).toBe(204);
    expect((await fc.request("PUT", "/actions", { action_type: "InstanceStart" })).status).toBe(204);
    return fc;
  }
  const ctrlAltDel = (f: RunningFake) => f.request("PUT", "/actions", { action_type: "SendCtrlAltDel" });
  /** Whether the process exits within ms. */
  const exitsWithin = (f: RunningFake, ms: number) => Promise.race([f.exited.then(() => true), sleep(ms).then(() => false)]);
  async function consoleSays(f: RunningFake, text: string): Promise<void> {
    for (let i = 0; i < 100 && !f.output().includes(text); i++) await sleep(50);
    expect(f.output()).toContain(text);
  }

  it("refuses SendCtrlAltDel before InstanceStart", async () => {
    fc = await startFake(tmp.dir, { env: FAKE_FC_ENV });
    const res = await ctrlAltDel(fc);
    expect(res.status).toBe(400);
    expect(res.json.fault_message).toContain("[rule: needs-running-vm]");
  });

  it("exits with code 0 when Ctrl-Alt-Del makes the guest reboot (the default mapping)", async () => {
    const f = await started();
    expect((await ctrlAltDel(f)).status).toBe(204);
    expect(await f.exited).toEqual({ code: 0, signal: null });
    expect(f.output()).toContain("reboot: Restarting system");
  });

  it("keeps running when Ctrl-Alt-Del makes the guest power off, and ignores a second one", async () => {
    const f = await started({ FAKE_FC_CTRL_ALT_DEL: "poweroff" });
    expect((await ctrlAltDel(f)).status).toBe(204);
    await consoleSays(f, "reboot: Power down");
    expect((await ctrlAltDel(f)).status).toBe(204);
    await consoleSays(f, "Ctrl-Alt-Del ignored: the guest is halted");
    expect(await exitsWithin(f, 500)).toBe(false);
    // Firecracker still reports the instance as running: it cannot tell a halted guest.
    expect((await f.request("GET", "/")).json.state).toBe("Running");
  });

  it("FAKE_FC_CTRL_ALT_DEL=ignore: the guest does nothing", async () => {
    const f = await started({ FAKE_FC_CTRL_ALT_DEL: "ignore" });
    expect((await ctrlAltDel(f)).status).toBe(204);
    expect(await exitsWithin(f, 500)).toBe(false);
  });

  it("SIGUSR1 is an in-guest poweroff: halted, still running, deaf to Ctrl-Alt-Del", async () => {
    const f = await started();
    f.child.kill("SIGUSR1");
    await consoleSays(f, "reboot: Power down");
    expect((await ctrlAltDel(f)).status).toBe(204);
    expect(await exitsWithin(f, 500)).toBe(false);
    expect(readCalls(f.calls).at(-1)).toMatchObject({ path: "/actions", status: 204 });
  });

  it("SIGUSR2 is an in-guest reboot: the process exits with code 0", async () => {
    const f = await started({ FAKE_FC_CTRL_ALT_DEL: "ignore" });
    f.child.kill("SIGUSR2");
    expect(await f.exited).toEqual({ code: 0, signal: null });
  });

  it("SIGUSR2 before InstanceStart does nothing: there is no guest yet", async () => {
    fc = await startFake(tmp.dir, { env: FAKE_FC_ENV });
    fc.child.kill("SIGUSR2");
    expect(await exitsWithin(fc, 300)).toBe(false);
  });

  it("rejects an unknown FAKE_FC_CTRL_ALT_DEL value", async () => {
    await expect(startFake(tmp.dir, { env: { ...FAKE_FC_ENV, FAKE_FC_CTRL_ALT_DEL: "halt" } })).rejects.toThrow(/FAKE_FC_CTRL_ALT_DEL=halt/);
  });
});

describe("fake firecracker with FAKE_FC_SPEC=none", () => {
  let tmp: ReturnType<typeof scratch>;
  let fc: RunningFake;
  beforeEach(async () => {
    tmp = scratch("fcnospec-");
    fc = await startFake(tmp.dir, { env: { FAKE_FC_SPEC: "none" } });
  });
  afterEach(async () => {
    await fc.stop();
    tmp.cleanup();
  });

  it("answers only the routes it implements; anything else is a 400 as in Firecracker", async () => {
    expect((await fc.request("GET", "/")).status).toBe(200);
    for (const [method, path] of [
      ["GET", "/nope"],
      ["DELETE", "/drives/rootfs"],
      ["PUT", "/balloon"],
      ["GET", "/drives/rootfs"],
    ]) {
      const res = await fc.request(method, path, method === "GET" || method === "DELETE" ? undefined : {});
      expect(res.status).toBe(400);
      expect(res.json.fault_message).toContain("Invalid request method and/or path");
    }
  });

  it("still applies the semantic rules, and refuses an unknown action", async () => {
    const res = await fc.request("PUT", "/drives/rootfs", { drive_id: "other", path_on_host: tmp.file("r"), is_root_device: true, is_read_only: false });
    expect(res.json.fault_message).toContain("[rule: path-id-matches-body]");
    expect((await fc.request("PUT", "/actions", { action_type: "Reboot" })).status).toBe(400);
    expect((await fc.request("PUT", "/actions", { action_type: "InstanceStart" })).json.fault_message).toContain("[rule: start-needs-boot-source]");
  });

  it("checks the snapshot routes' enums and rules without the spec too", async () => {
    expect((await fc.request("PATCH", "/vm", { state: "Sleeping" })).json.fault_message).toContain("body.state must be one of Paused, Resumed");
    expect((await fc.request("PATCH", "/vm", { state: "Paused" })).json.fault_message).toContain("[rule: post-boot-only]");
    const load = await fc.request("PUT", "/snapshot/load", { snapshot_path: "/x", mem_backend: { backend_type: "Disk", backend_path: "/y" } });
    expect(load.json.fault_message).toContain("backend_type must be one of File, Uffd");
    expect((await fc.request("PUT", "/snapshot/load", { snapshot_path: "/x" })).json.fault_message).toContain("[rule: mem-field-required]");
  });
});
