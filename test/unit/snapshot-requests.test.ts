import { describe, expect, it } from "vitest";
import { repointDriveRequest, snapshotCreateRequest, snapshotLoadRequest, vmStateRequest } from "../../src/adapters/firecracker/snapshot-requests.js";
import { buildQemuArgs } from "../../src/adapters/qemu/args.js";
import { BangerError } from "../../src/domain/errors.js";
import type { VmmSpec } from "../../src/ports/vmm.js";
import { HAVE_SPEC, NO_SPEC_REASON, SPEC_PATH } from "../fakes/firecracker/testkit.js";

const load = { statePath: "/s/state.snap", memPath: "/s/memory.snap", tap: "tap-banger4", vsockPath: "/vms/v4/vsock.sock" };

describe.skipIf(!HAVE_SPEC)(`snapshot request bodies against the Firecracker spec${HAVE_SPEC ? "" : ` (skipped: ${NO_SPEC_REASON})`}`, async () => {
  const { loadSpec } = HAVE_SPEC ? await import("../fakes/firecracker/spec.mjs") : { loadSpec: undefined };
  const fc = HAVE_SPEC ? loadSpec!(SPEC_PATH) : undefined;
  const requests = [
    vmStateRequest("Paused"),
    vmStateRequest("Resumed"),
    snapshotCreateRequest("/s/state.snap", "/s/memory.snap"),
    snapshotLoadRequest(load),
    repointDriveRequest("rootfs", "/vms/v4/rootfs.ext4"),
    repointDriveRequest("work", "/vms/v4/work.ext4"),
  ];

  it.each(requests.map((r) => [`${r.method} ${r.path}`, r] as const))("%s matches a spec operation and validates", (_name, req) => {
    const found = fc!.route(req.method, req.path);
    expect(found.route, `${req.method} ${req.path} is not in the spec`).toBeDefined();
    expect(found.route.validate(req.body), fc!.errorsText(found.route.validate.errors)).toBe(true);
  });

  it("the load body uses mem_backend only, overrides eth0's TAP and the vsock socket, and stays paused", () => {
    expect(snapshotLoadRequest(load).body).toEqual({
      snapshot_path: "/s/state.snap",
      mem_backend: { backend_type: "File", backend_path: "/s/memory.snap" },
      network_overrides: [{ iface_id: "eth0", host_dev_name: "tap-banger4" }],
      vsock_override: { uds_path: "/vms/v4/vsock.sock" },
      resume_vm: false,
    });
  });
});

describe("snapshot request validation before anything is sent", () => {
  it("refuses a TAP name Linux cannot have and an empty path, naming the field", () => {
    const e = (() => {
      try {
        snapshotLoadRequest({ ...load, tap: "tap-with-a-very-long-name" });
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(BangerError);
    expect((e as BangerError).message).toMatch(/network_overrides\.0\.host_dev_name/);
    expect(() => repointDriveRequest("work", "")).toThrow(/path_on_host/);
  });
});

describe("qemu restore argv", () => {
  const spec: VmmSpec = {
    vmId: "v",
    name: "v",
    dir: "/d",
    kernel: "/k",
    bootArgs: "console=ttyS0",
    rootfs: "/d/rootfs.ext4",
    workDisk: "/d/work.ext4",
    vcpus: 2,
    memoryMib: 1024,
    tap: "tap0",
    mac: "02:fc:00:00:00:02",
    vsockCid: 3,
  };
  const base = { accel: "tcg" as const, qmpSocket: "/d/qmp.sock", serial: { kind: "file" as const, path: "/d/console.log" }, paused: true };

  it("is the boot's argv plus -incoming with the URI as given", () => {
    const boot = buildQemuArgs(spec, base);
    expect(buildQemuArgs(spec, { ...base, incoming: "fd:3" })).toEqual([...boot, "-incoming", "fd:3"]);
  });
});
