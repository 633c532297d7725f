import { describe, expect, it } from "vitest";
import { AGENT_PORT_NAME, buildQemuArgs } from "../../src/adapters/qemu/args.js";
import type { VmmSpec } from "../../src/ports/vmm.js";

const spec: VmmSpec = {
  vmId: "vm1",
  name: "alpha",
  dir: "/var/lib/banger/vms/vm1",
  kernel: "/img/vmlinux",
  initrd: "/img/initrd.img",
  bootArgs: "console=ttyS0 panic=1 root=/dev/vda",
  rootfs: "/var/lib/banger/vms/vm1/rootfs.ext4",
  workDisk: "/var/lib/banger/vms/vm1/work.ext4",
  vcpus: 2,
  memoryMib: 512,
  tap: "tap-banger3",
  mac: "02:fc:00:00:00:03",
  vsockCid: 3,
};

const base = { qmpSocket: "/d/qmp.sock", serial: { kind: "file" as const, path: "/d/console.log" }, paused: true };

/** The value following the nth occurrence of flag. */
function valuesOf(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]] : []));
}

describe("buildQemuArgs", () => {
  it("builds a TCG microvm with ACPI discovery, disks in order, tap networking, QMP and serial file", () => {
    const args = buildQemuArgs(spec, { ...base, accel: "tcg", tscKhz: 2596142 });
    expect(valuesOf(args, "-M")).toEqual(["microvm,acpi=on"]);
    expect(valuesOf(args, "-accel")).toEqual(["tcg,tb-size=64,thread=multi"]);
    expect(valuesOf(args, "-cpu")).toEqual(["max"]);
    for (const f of ["-nodefaults", "-no-user-config", "-no-reboot", "-S"]) expect(args).toContain(f);
    expect(valuesOf(args, "-display")).toEqual(["none"]);
    expect(valuesOf(args, "-smp")).toEqual(["2"]);
    expect(valuesOf(args, "-m")).toEqual(["512"]);
    expect(valuesOf(args, "-kernel")).toEqual(["/img/vmlinux"]);
    expect(valuesOf(args, "-initrd")).toEqual(["/img/initrd.img"]);
    expect(valuesOf(args, "-append")).toEqual(["console=ttyS0 panic=1 root=/dev/vda tsc_early_khz=2596142"]);
    expect(valuesOf(args, "-drive")).toEqual([
      "id=rootfs,file=/var/lib/banger/vms/vm1/rootfs.ext4,format=raw,if=none",
      "id=work,file=/var/lib/banger/vms/vm1/work.ext4,format=raw,if=none",
    ]);
    expect(valuesOf(args, "-netdev")).toEqual(["tap,id=net0,ifname=tap-banger3,script=no,downscript=no"]);
    expect(valuesOf(args, "-device")).toEqual([
      "virtio-blk-device,drive=rootfs",
      "virtio-blk-device,drive=work",
      "virtio-net-device,netdev=net0,mac=02:fc:00:00:00:03",
    ]);
    expect(valuesOf(args, "-qmp")).toEqual(["unix:/d/qmp.sock,server=on,wait=off"]);
    expect(valuesOf(args, "-chardev")).toEqual(["file,id=serial0,path=/d/console.log,append=on"]);
    expect(valuesOf(args, "-serial")).toEqual(["chardev:serial0"]);
  });

  it("uses kvm with the MSR-safe cpu model and never adds tsc_early_khz", () => {
    const args = buildQemuArgs(spec, { ...base, accel: "kvm", tscKhz: 2596142 });
    expect(valuesOf(args, "-accel")).toEqual(["kvm"]);
    expect(valuesOf(args, "-cpu")).toEqual(["host,-arch-capabilities"]);
    expect(valuesOf(args, "-append")[0]).not.toContain("tsc_early_khz");
  });

  it("keeps a tsc_early_khz already in the boot args instead of adding a second one", () => {
    const args = buildQemuArgs({ ...spec, bootArgs: "console=ttyS0 tsc_early_khz=1000" }, { ...base, accel: "tcg", tscKhz: 2 });
    expect(valuesOf(args, "-append")).toEqual(["console=ttyS0 tsc_early_khz=1000"]);
  });

  it("omits -initrd, -S, networking when absent and can route serial to stdio", () => {
    const args = buildQemuArgs({ ...spec, initrd: undefined, tap: "" }, { ...base, accel: "tcg", paused: false, serial: { kind: "stdio" } });
    expect(args).not.toContain("-initrd");
    expect(args).not.toContain("-S");
    expect(args).not.toContain("-netdev");
    expect(valuesOf(args, "-serial")).toEqual(["stdio"]);
  });

  it("adds the virtio-serial agent port on a host socket", () => {
    const args = buildQemuArgs(spec, { ...base, accel: "tcg", agentSocket: "/d/agent.sock" });
    expect(valuesOf(args, "-chardev")).toEqual(["socket,id=agent,path=/d/agent.sock,server=on,wait=off", "file,id=serial0,path=/d/console.log,append=on"]);
    expect(valuesOf(args, "-device")).toContain("virtio-serial-device");
    expect(valuesOf(args, "-device")).toContain(`virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`);
  });

  it("adds a vhost-vsock-device with the VM's CID only when asked (hosts with /dev/vhost-vsock)", () => {
    const without = buildQemuArgs(spec, { ...base, accel: "tcg", agentSocket: "/d/agent.sock" });
    expect(valuesOf(without, "-device").some((d) => d.startsWith("vhost-vsock"))).toBe(false);
    const args = buildQemuArgs(spec, { ...base, accel: "tcg", agentSocket: "/d/agent.sock", vhostVsock: true });
    expect(valuesOf(args, "-device")).toContain(`vhost-vsock-device,guest-cid=${spec.vsockCid}`);
    expect(valuesOf(args, "-device")).toContain(`virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`);
  });

  it("doubles commas in paths so QEMU does not split them into options", () => {
    const args = buildQemuArgs({ ...spec, rootfs: "/a,b/root.ext4" }, { ...base, accel: "tcg", qmpSocket: "/q,1/qmp.sock" });
    expect(valuesOf(args, "-drive")[0]).toBe("id=rootfs,file=/a,,b/root.ext4,format=raw,if=none");
    expect(valuesOf(args, "-qmp")).toEqual(["unix:/q,,1/qmp.sock,server=on,wait=off"]);
    const serial = buildQemuArgs(spec, { ...base, accel: "tcg", serial: { kind: "file", path: "/v,m/console.log" } });
    expect(valuesOf(serial, "-chardev")).toEqual(["file,id=serial0,path=/v,,m/console.log,append=on"]);
  });
});
