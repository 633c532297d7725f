import { describe, expect, it } from "vitest";
import { firecrackerPaths } from "../../src/adapters/firecracker/driver.js";
import { actionRequest, configureRequests, firecrackerBootArgs, instanceId } from "../../src/adapters/firecracker/schemas.js";
import { BangerError } from "../../src/domain/errors.js";
import type { VmmSpec } from "../../src/ports/vmm.js";
import { HAVE_SPEC, NO_SPEC_REASON, SPEC_PATH } from "../fakes/firecracker/testkit.js";

const spec: VmmSpec = {
  vmId: "01J9ZQ7X_vm",
  name: "alpha",
  dir: "/var/lib/banger/vms/vm1",
  kernel: "/img/vmlinux",
  initrd: "/img/initrd.img",
  bootArgs: "console=ttyS0 reboot=k panic=1 root=/dev/vda",
  rootfs: "/var/lib/banger/vms/vm1/rootfs.ext4",
  workDisk: "/var/lib/banger/vms/vm1/work.ext4",
  vcpus: 2,
  memoryMib: 512,
  tap: "tap-banger3",
  mac: "02:fc:00:00:00:03",
  vsockCid: 7,
};
const paths = firecrackerPaths(spec.dir);

describe.skipIf(!HAVE_SPEC)(`driver request bodies against the Firecracker spec${HAVE_SPEC ? "" : ` (skipped: ${NO_SPEC_REASON})`}`, async () => {
  // The fake's loader: Swagger 2.0 definitions in ajv, objects closed like Firecracker's serde structs.
  const { loadSpec } = HAVE_SPEC ? await import("../fakes/firecracker/spec.mjs") : { loadSpec: undefined };
  const fc = HAVE_SPEC ? loadSpec!(SPEC_PATH) : undefined;

  const requests = [...configureRequests(spec, paths), actionRequest("InstanceStart"), actionRequest("SendCtrlAltDel")];

  it.each(requests.map((r) => [`${r.method} ${r.path}`, r] as const))("%s matches a spec operation and validates", (_name, req) => {
    const found = fc!.route(req.method, req.path);
    expect(found.route, `${req.method} ${req.path} is not in the spec`).toBeDefined();
    const ok = found.route.validate(req.body);
    expect(ok, fc!.errorsText(found.route.validate.errors)).toBe(true);
  });

  it("the spec loader really rejects what Firecracker would (so the check above is not vacuous)", () => {
    const drive = fc!.route("PUT", "/drives/rootfs").route;
    expect(drive.validate({ drive_id: "rootfs", path_on_host: "/x", is_root_device: true, is_read_only: false, extra: 1 })).toBe(false);
    expect(drive.validate({ path_on_host: "/x", is_read_only: false })).toBe(false);
    expect(fc!.route("PUT", "/vsock").route.validate({ guest_cid: 1, uds_path: "/x" })).toBe(false);
  });

  it("ids in request paths equal the ids in their bodies", () => {
    for (const req of requests) {
      const m = /^\/(drives|network-interfaces)\/(.+)$/.exec(req.path);
      if (!m) continue;
      const bodyId = m[1] === "drives" ? req.body.drive_id : req.body.iface_id;
      expect(bodyId).toBe(m[2]);
    }
  });
});

describe("configureRequests", () => {
  it("sends logger, machine, boot source, drives, network and vsock in that order with exact bodies", () => {
    const reqs = configureRequests(spec, paths);
    expect(reqs.map((r) => `${r.method} ${r.path}`)).toEqual([
      "PUT /logger",
      "PUT /machine-config",
      "PUT /boot-source",
      "PUT /drives/rootfs",
      "PUT /drives/work",
      "PUT /network-interfaces/eth0",
      "PUT /vsock",
    ]);
    const byPath = Object.fromEntries(reqs.map((r) => [r.path, r.body]));
    expect(byPath["/machine-config"]).toEqual({ vcpu_count: 2, mem_size_mib: 512, smt: false });
    expect(byPath["/boot-source"]).toEqual({
      kernel_image_path: "/img/vmlinux",
      initrd_path: "/img/initrd.img",
      boot_args: "console=ttyS0 reboot=k panic=1 root=/dev/vda pci=off",
    });
    expect(byPath["/drives/rootfs"]).toEqual({ drive_id: "rootfs", path_on_host: spec.rootfs, is_root_device: true, is_read_only: false });
    expect(byPath["/drives/work"]).toEqual({ drive_id: "work", path_on_host: spec.workDisk, is_root_device: false, is_read_only: false });
    expect(byPath["/network-interfaces/eth0"]).toEqual({ iface_id: "eth0", host_dev_name: "tap-banger3", guest_mac: "02:fc:00:00:00:03" });
    expect(byPath["/vsock"]).toEqual({ guest_cid: 7, uds_path: "/var/lib/banger/vms/vm1/vsock.sock" });
    expect(byPath["/logger"]).toMatchObject({ log_path: "/var/lib/banger/vms/vm1/firecracker.log" });
  });

  it("omits initrd_path when the image has no initrd", () => {
    const boot = configureRequests({ ...spec, initrd: undefined }, paths).find((r) => r.path === "/boot-source")!;
    expect(boot.body).not.toHaveProperty("initrd_path");
  });

  it.each([
    ["vcpus", { vcpus: 0 }, "vcpu_count"],
    ["memory", { memoryMib: 0 }, "mem_size_mib"],
    ["MAC", { mac: "02:fc:00:00:00" }, "guest_mac"],
    ["TAP name", { tap: "a-tap-name-that-is-too-long" }, "host_dev_name"],
    ["vsock CID", { vsockCid: 2 }, "guest_cid"],
  ])("refuses a bad %s before sending anything", (_what, patch, field) => {
    let err: unknown;
    try {
      configureRequests({ ...spec, ...patch }, paths);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BangerError);
    expect((err as BangerError).code).toBe("VMM_FAILED");
    expect((err as BangerError).message).toContain(field);
  });
});

describe("firecrackerBootArgs", () => {
  it("adds pci=off once", () => {
    expect(firecrackerBootArgs("console=ttyS0")).toBe("console=ttyS0 pci=off");
    expect(firecrackerBootArgs("console=ttyS0 pci=off")).toBe("console=ttyS0 pci=off");
  });
});

describe("instanceId", () => {
  it("keeps Firecracker's --id rule: alphanumerics and '-', at most 64", () => {
    expect(instanceId("01J9ZQ7X_vm")).toBe("01J9ZQ7X-vm");
    expect(instanceId("a/b c")).toBe("a-b-c");
    const long = instanceId("x".repeat(100));
    expect(long).toHaveLength(64);
    expect(instanceId("")).toMatch(/^[A-Za-z0-9-]{1,64}$/);
  });
});
