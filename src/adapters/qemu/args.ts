import type { VmmSpec } from "../../ports/vmm.js";

export interface QemuArgsOptions {
  accel: "kvm" | "tcg";
  /** Host TSC in kHz; appended as tsc_early_khz under TCG (PIT calibration hangs the boot on a busy host). */
  tscKhz?: number;
  qmpSocket: string;
  serial: { kind: "file"; path: string } | { kind: "stdio" };
  /** Start with the vCPUs stopped (-S); `cont` over QMP starts the guest. */
  paused: boolean;
  /** Host UNIX socket for the virtio-serial companion channel (the vsock stand-in). */
  agentSocket?: string;
  /** Add a vhost-vsock-device with the spec's CID (hosts with /dev/vhost-vsock); the agent port stays as well. */
  vhostVsock?: boolean;
  /** QEMU's seccomp filter (-sandbox on), when this build has it. */
  sandbox?: boolean;
  /** Restore: a migration URI (`fd:3` for an inherited state file) the device and memory state are read from at startup. */
  incoming?: string;
}

/** seccomp on; also deny what a microvm never needs: obsolete syscalls, setuid & co, fork/exec, scheduler and CPU-affinity changes. */
export const SANDBOX_ARG = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/** Name of the virtio-serial port; the guest sees /dev/virtio-ports/<name>. */
export const AGENT_PORT_NAME = "org.banger.agent";

/** QEMU splits option values on ',' — a literal comma is written twice. */
function esc(value: string): string {
  return value.replace(/,/g, ",,");
}

function drive(id: string, file: string): string[] {
  return ["-drive", `id=${id},file=${esc(file)},format=raw,if=none`, "-device", `virtio-blk-device,drive=${id}`];
}

/**
 * argv (without the binary) for one QEMU `microvm` guest.
 * Device order matters: the rootfs drive comes first so the guest names it
 * /dev/vda and the work disk /dev/vdb.
 * An empty spec.tap omits networking entirely (used by tests that boot
 * without a TAP).
 */
export function buildQemuArgs(spec: VmmSpec, opts: QemuArgsOptions): string[] {
  // acpi=on: stock Debian kernels lack VIRTIO_MMIO_CMDLINE_DEVICES, so devices must be announced via ACPI.
  const args = ["-M", "microvm,acpi=on"];
  if (opts.accel === "kvm") {
    // Plain `host`/`max` make QEMU abort on MSR 0x10a (arch-capabilities) on PVM hosts.
    args.push("-accel", "kvm", "-cpu", "host,-arch-capabilities");
  } else {
    // tb-size=64 halves RSS compared with the default translation cache; thread=multi gives real SMP.
    args.push("-accel", "tcg,tb-size=64,thread=multi", "-cpu", "max");
  }
  args.push("-nodefaults", "-no-user-config", "-display", "none", "-no-reboot");
  args.push("-smp", String(spec.vcpus), "-m", String(spec.memoryMib));

  args.push("-kernel", spec.kernel);
  if (spec.initrd) args.push("-initrd", spec.initrd);
  let append = spec.bootArgs;
  if (opts.accel === "tcg" && opts.tscKhz && !/(^|\s)tsc_early_khz=/.test(append)) {
    append = `${append} tsc_early_khz=${opts.tscKhz}`.trim();
  }
  args.push("-append", append);

  args.push(...drive("rootfs", spec.rootfs));
  args.push(...drive("work", spec.workDisk));

  if (spec.tap) {
    args.push("-netdev", `tap,id=net0,ifname=${esc(spec.tap)},script=no,downscript=no`, "-device", `virtio-net-device,netdev=net0,mac=${spec.mac}`);
  }

  if (opts.agentSocket) {
    args.push(
      "-device",
      "virtio-serial-device",
      "-chardev",
      `socket,id=agent,path=${esc(opts.agentSocket)},server=on,wait=off`,
      "-device",
      `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    );
  }

  if (opts.vhostVsock) args.push("-device", `vhost-vsock-device,guest-cid=${spec.vsockCid}`);

  args.push("-qmp", `unix:${esc(opts.qmpSocket)},server=on,wait=off`);
  if (opts.serial.kind === "file") {
    // append=on opens with O_APPEND (`-serial file:` uses O_TRUNC and a plain offset): after the
    // console rotation truncates the file, writes land at its new end instead of leaving a hole,
    // and a restart of a stopped VM keeps the console history.
    args.push("-chardev", `file,id=serial0,path=${esc(opts.serial.path)},append=on`, "-serial", "chardev:serial0");
  } else {
    args.push("-serial", "stdio");
  }
  if (opts.paused) args.push("-S");
  if (opts.sandbox) args.push("-sandbox", SANDBOX_ARG);
  // The URI is not a QEMU option string: no comma escaping.
  if (opts.incoming) args.push("-incoming", opts.incoming);
  return args;
}
