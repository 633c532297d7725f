import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HAVE_SPEC, NO_SPEC_REASON, readCalls, runFake, scratch, startFake, type RunningFake } from "../fakes/firecracker/testkit.js";

// Proves the fake is strict: every request real Firecracker would refuse gets
// a 400 with a fault_message naming the rule, so the driver tests that pass
// against it mean something.
describe.skipIf(!HAVE_SPEC)(`fake firecracker strictness${HAVE_SPEC ? "" : ` (skipped: ${NO_SPEC_REASON})`}`, () => {
  let tmp: ReturnType<typeof scratch>;
  let fc: RunningFake;
  let kernel: string;
  let rootfs: string;

  beforeEach(async () => {
    tmp = scratch();
    kernel = tmp.file("vmlinux");
    rootfs = tmp.file("rootfs.ext4");
    fc = await startFake(tmp.dir);
  });

  afterEach(async () => {
    await fc?.stop();
    tmp?.cleanup();
  });

  const drive = (id: string, path: string, root = false) => ({ drive_id: id, path_on_host: path, is_root_device: root, is_read_only: false });

  async function expectFault(method: string, path: string, body: unknown, rule: string): Promise<string> {
    const res = await fc.request(method, path, body);
    expect(res.status).toBe(400);
    expect(res.json.fault_message).toContain(`[rule: ${rule}]`);
    return res.json.fault_message as string;
  }

  it("answers GET / and GET /machine-config with instance info and defaults", async () => {
    expect((await fc.request("GET", "/")).json).toEqual({ id: "test-vm", state: "Not started", vmm_version: "1.16.1", app_name: "Firecracker" });
    expect((await fc.request("GET", "/machine-config")).json).toMatchObject({ vcpu_count: 1, mem_size_mib: 128, smt: false });
  });

  it("rejects a drive whose body id differs from the path id", async () => {
    const msg = await expectFault("PUT", "/drives/rootfs", drive("other", rootfs, true), "path-id-matches-body");
    expect(msg).toContain("does not match");
  });

  it("rejects path ids with characters other than alphanumerics and underscores", async () => {
    await expectFault("PUT", "/drives/root-fs", drive("root-fs", rootfs, true), "resource-id-charset");
    await expectFault("PUT", "/network-interfaces/eth.0", { iface_id: "eth.0", host_dev_name: "tap0" }, "resource-id-charset");
  });

  it("rejects a body missing a required field, naming the field", async () => {
    const msg = await expectFault("PUT", "/machine-config", { vcpu_count: 2 }, "schema");
    expect(msg).toContain("mem_size_mib");
  });

  it("rejects fields the spec does not define (Firecracker denies unknown fields)", async () => {
    const msg = await expectFault("PUT", "/boot-source", { kernel_image_path: kernel, bootargs: "typo" }, "schema");
    expect(msg).toContain("bootargs");
  });

  it("rejects wrong types and out-of-range values from the spec", async () => {
    await expectFault("PUT", "/machine-config", { vcpu_count: 0, mem_size_mib: 128 }, "schema");
    await expectFault("PUT", "/machine-config", { vcpu_count: 2, mem_size_mib: "128" }, "schema");
    await expectFault("PUT", "/vsock", { guest_cid: 2, uds_path: join(tmp.dir, "v.sock") }, "schema");
    await expectFault("PUT", "/actions", { action_type: "Reboot" }, "schema");
  });

  it("rejects unknown paths and methods with 400, as Firecracker does", async () => {
    await expectFault("GET", "/nope", undefined, "path-and-method-in-spec");
    await expectFault("DELETE", "/drives/rootfs", undefined, "path-and-method-in-spec");
  });

  it("rejects non-JSON bodies and PUTs without a body", async () => {
    await expectFault("PUT", "/boot-source", "{not json", "body-is-json");
    await expectFault("PUT", "/boot-source", undefined, "body-required");
  });

  it("rejects a missing kernel, initrd or drive file", async () => {
    const missing = join(tmp.dir, "missing");
    expect(await expectFault("PUT", "/boot-source", { kernel_image_path: missing }, "host-file-exists")).toContain("kernel");
    expect(await expectFault("PUT", "/boot-source", { kernel_image_path: kernel, initrd_path: missing }, "host-file-exists")).toContain("initrd");
    await expectFault("PUT", "/drives/rootfs", drive("rootfs", missing, true), "host-file-exists");
  });

  it("rejects a vsock uds_path that already exists", async () => {
    const uds = join(tmp.dir, "vsock.sock");
    writeFileSync(uds, "");
    await expectFault("PUT", "/vsock", { guest_cid: 3, uds_path: uds }, "vsock-uds-absent");
  });

  it("binds the vsock uds_path itself, so a second device on the same path replaces the first", async () => {
    const uds = join(tmp.dir, "vsock.sock");
    expect((await fc.request("PUT", "/vsock", { guest_cid: 3, uds_path: uds })).status).toBe(204);
    expect(existsSync(uds)).toBe(true);
    expect((await fc.request("PUT", "/vsock", { guest_cid: 4, uds_path: uds })).status).toBe(204);
  });

  it("allows only one root device", async () => {
    const other = tmp.file("other.ext4");
    expect((await fc.request("PUT", "/drives/rootfs", drive("rootfs", rootfs, true))).status).toBe(204);
    await expectFault("PUT", "/drives/second", drive("second", other, true), "single-root-device");
    // Re-putting the same root drive is an update, not a second root.
    expect((await fc.request("PUT", "/drives/rootfs", drive("rootfs", other, true))).status).toBe(204);
  });

  it("rejects InstanceStart before a boot source is set", async () => {
    await expectFault("PUT", "/actions", { action_type: "InstanceStart" }, "start-needs-boot-source");
  });

  it("rejects pre-boot resources after InstanceStart, and a second InstanceStart", async () => {
    expect((await fc.request("PUT", "/boot-source", { kernel_image_path: kernel })).status).toBe(204);
    expect((await fc.request("PUT", "/actions", { action_type: "InstanceStart" })).status).toBe(204);
    expect((await fc.request("GET", "/")).json.state).toBe("Running");
    await expectFault("PUT", "/drives/rootfs", drive("rootfs", rootfs, true), "pre-boot-only");
    await expectFault("PUT", "/machine-config", { vcpu_count: 2, mem_size_mib: 256 }, "pre-boot-only");
    await expectFault("PUT", "/actions", { action_type: "InstanceStart" }, "start-once");
  });

  it("rejects SMT with an odd vCPU count", async () => {
    await expectFault("PUT", "/machine-config", { vcpu_count: 3, mem_size_mib: 256, smt: true }, "machine-config-values");
  });

  it("rejects a second interface on the same TAP or MAC", async () => {
    const ok = await fc.request("PUT", "/network-interfaces/eth0", { iface_id: "eth0", host_dev_name: "tap0", guest_mac: "02:fc:00:00:00:02" });
    expect(ok.status).toBe(204);
    await expectFault("PUT", "/network-interfaces/eth1", { iface_id: "eth1", host_dev_name: "tap0" }, "unique-host-dev");
    await expectFault("PUT", "/network-interfaces/eth1", { iface_id: "eth1", host_dev_name: "tap1", guest_mac: "02:FC:00:00:00:02" }, "unique-guest-mac");
    await expectFault("PUT", "/network-interfaces/eth1", { iface_id: "eth1", host_dev_name: "tap1", guest_mac: "not-a-mac" }, "mac-format");
  });

  it("requires logger files to exist and configures the logger once", async () => {
    await expectFault("PUT", "/logger", { log_path: join(tmp.dir, "nope.log") }, "host-file-exists");
    const log = tmp.file("fc.log", 0);
    expect((await fc.request("PUT", "/logger", { log_path: log, level: "Warning" })).status).toBe(204);
    await expectFault("PUT", "/logger", { log_path: log }, "configure-once");
  });

  it("records every request with its status and fault", async () => {
    await fc.request("PUT", "/machine-config", { vcpu_count: 2, mem_size_mib: 256 });
    await fc.request("PUT", "/drives/x", drive("y", rootfs));
    const calls = readCalls(fc.calls);
    expect(calls.map((c) => [c.method, c.path, c.status])).toEqual([
      ["PUT", "/machine-config", 204],
      ["PUT", "/drives/x", 400],
    ]);
    expect(calls[0].body).toEqual({ vcpu_count: 2, mem_size_mib: 256 });
    expect(calls[1].fault).toContain("path-id-matches-body");
  });

  it("exits on SIGTERM", async () => {
    fc.child.kill("SIGTERM");
    expect((await fc.exited).code).toBe(143);
  });
});

describe.skipIf(!HAVE_SPEC)(`fake firecracker TAP check${HAVE_SPEC ? "" : ` (skipped: ${NO_SPEC_REASON})`}`, () => {
  it("with FAKE_FC_CHECK_TAP=1 rejects a host_dev_name that is not a TAP (lo is not)", async () => {
    const tmp = scratch();
    const fc = await startFake(tmp.dir, { env: { FAKE_FC_CHECK_TAP: "1" } });
    try {
      for (const name of ["lo", "banger-no-such-tap"]) {
        const res = await fc.request("PUT", "/network-interfaces/eth0", { iface_id: "eth0", host_dev_name: name });
        expect(res.status).toBe(400);
        expect(res.json.fault_message).toContain("[rule: tap-exists]");
      }
    } finally {
      await fc.stop();
      tmp.cleanup();
    }
  });
});

describe("fake firecracker command line", () => {
  it("prints its version", async () => {
    const r = await runFake(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("Firecracker v1.16.1 (fake)");
  });

  it("rejects unknown arguments and invalid instance ids with exit 1", async () => {
    const bogus = await runFake(["--api-sock", "/tmp/x.sock", "--no-such-flag"]);
    expect(bogus.code).toBe(1);
    expect(bogus.stderr).toContain("--no-such-flag");
    const badId = await runFake(["--api-sock", "/tmp/x.sock", "--id", "has_underscore"]);
    expect(badId.code).toBe(1);
    expect(badId.stderr).toContain("Invalid instance ID");
  });

  it("refuses an API socket path that already exists", async () => {
    const tmp = scratch();
    try {
      const sock = tmp.file("fc.sock", 0);
      const r = await runFake(["--api-sock", sock, "--id", "x"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("Address in use");
    } finally {
      tmp.cleanup();
    }
  });

  it("exits 2 with a clear message when the spec is missing", async () => {
    const tmp = scratch();
    try {
      const r = await runFake(["--api-sock", join(tmp.dir, "fc.sock")], { FAKE_FC_SPEC: join(tmp.dir, "absent.yaml") });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("API spec not found");
    } finally {
      tmp.cleanup();
    }
  });
});
