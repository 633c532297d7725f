import { describe, expect, it } from "vitest";
import { configureRequests, firecrackerBootArgs } from "../../src/adapters/firecracker/schemas.js";
import { firecrackerPaths } from "../../src/adapters/firecracker/driver.js";
import { buildQemuArgs } from "../../src/adapters/qemu/args.js";
import { DEFAULT_BOOT_ARGS } from "../../src/app/images.js";
import type { VmmSpec } from "../../src/ports/vmm.js";
import { HAVE_SPEC, SPEC_PATH } from "../fakes/firecracker/testkit.js";

// Alpine's initramfs mounts the root with `rootfstype`, so it belongs to the
// shared default every image and both VMMs get, not to one image's registration.
const spec: VmmSpec = {
  vmId: "vm1",
  name: "alp",
  dir: "/var/lib/banger/vms/vm1",
  kernel: "/img/vmlinux",
  initrd: "/img/initrd",
  bootArgs: `${DEFAULT_BOOT_ARGS} ip=172.30.0.5::172.30.0.1:255.255.255.0:alp:eth0:off`,
  rootfs: "/v/rootfs.ext4",
  workDisk: "/v/work.ext4",
  vcpus: 2,
  memoryMib: 1024,
  tap: "tap-banger3",
  mac: "02:fc:00:00:00:03",
  vsockCid: 3,
};

describe("shared boot arguments", () => {
  it("the default carries rootfstype=ext4 next to root=/dev/vda", () => {
    expect(DEFAULT_BOOT_ARGS.split(" ")).toEqual(expect.arrayContaining(["rootfstype=ext4", "root=/dev/vda", "console=ttyS0", "reboot=k"]));
  });

  it("QEMU's -append has it", () => {
    const args = buildQemuArgs(spec, { qmpSocket: "/d/q.sock", serial: { kind: "file", path: "/d/c.log" }, paused: true, accel: "kvm" });
    const append = args[args.indexOf("-append") + 1];
    expect(append.split(" ")).toContain("rootfstype=ext4");
  });

  it("Firecracker's boot-source has it, and still passes the spec", async () => {
    const boot = configureRequests(spec, firecrackerPaths(spec.dir)).find((r) => r.path === "/boot-source")!;
    const body = boot.body as { boot_args: string };
    expect(body.boot_args.split(" ")).toEqual(expect.arrayContaining(["rootfstype=ext4", "pci=off"]));
    expect(firecrackerBootArgs(DEFAULT_BOOT_ARGS)).toMatch(/rootfstype=ext4.* pci=off$/);
    if (HAVE_SPEC) {
      const { loadSpec } = await import("../fakes/firecracker/spec.mjs");
      const route = loadSpec(SPEC_PATH).route("PUT", "/boot-source").route;
      expect(route.validate(body)).toBe(true);
    }
  });
});
