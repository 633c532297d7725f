import type { VmmKind } from "../domain/types.js";

/** Everything a VMM needs to boot one guest. Paths are absolute. */
export interface VmmSpec {
  vmId: string;
  name: string;
  /** Per-VM directory: sockets, console.log, pid files live here. */
  dir: string;
  kernel: string;
  initrd?: string;
  /** Full kernel command line, network and console included. */
  bootArgs: string;
  rootfs: string;
  workDisk: string;
  vcpus: number;
  memoryMib: number;
  tap: string;
  mac: string;
  vsockCid: number;
}

/** What the store keeps so a restarted daemon can find the process again. */
export interface VmmHandle {
  kind: VmmKind;
  pid: number;
  /** /proc/<pid>/stat starttime, to tell a reused pid from ours. */
  pidStart: number;
  /** API (firecracker) or QMP (qemu) socket. */
  controlSocket: string;
  consoleLog: string;
}

/** How stop() ended the process. */
export type StopHow = "already-gone" | "guest" | "vmm-request" | "sigterm" | "sigkill";
export interface StopResult {
  how: StopHow;
  ms: number;
}

/**
 * A VMM driver. A boot is split in three so create can time and undo each:
 * spawn (process up, control socket answering, guest not running),
 * configure (machine, boot source, drives, net, vsock), start (guest runs).
 */
export interface Vmm {
  readonly kind: VmmKind;
  /** The driver owns its file layout: where its control socket lives in a VM dir. */
  controlSocket(dir: string): string;
  /** Where the guest's serial console goes in a VM dir. */
  consoleLog(dir: string): string;
  spawn(spec: VmmSpec, signal?: AbortSignal): Promise<VmmHandle>;
  configure(handle: VmmHandle, spec: VmmSpec, signal?: AbortSignal): Promise<void>;
  start(handle: VmmHandle, signal?: AbortSignal): Promise<void>;
  /**
   * The in-guest command whose effect ends this VMM process: "reboot" for Firecracker (it has no
   * power-off; a reboot ends the process), "poweroff" for QEMU (ACPI S5; qemu exits).
   */
  readonly guestStopCommand: "reboot" | "poweroff";
  /**
   * End the process within opts.timeoutMs. First give an exit the guest already started (the
   * caller ran guestStopCommand over SSH) opts.graceMs to happen; then the VMM's own request
   * (Firecracker: SendCtrlAltDel, which the guest maps to a reboot; QEMU: ACPI system_powerdown,
   * or `quit` when the guest never ran); then SIGTERM, then SIGKILL. Resolves once the process is
   * gone, saying how it ended. A failed API/QMP request (socket already gone because the guest is
   * mid-reboot) does not cause an immediate SIGTERM: the exit is awaited until the deadline.
   */
  stop(handle: VmmHandle, opts: { timeoutMs: number; graceMs?: number }): Promise<StopResult>;
  /** SIGKILL and wait for exit; used by undo. Safe on a dead process. */
  kill(handle: VmmHandle): Promise<void>;
  /** The process exists and is the one we started (pid + start time). */
  isAlive(handle: VmmHandle): boolean;
  /**
   * `<binary path>: <first line of --version>`, for doctor (daemon and offline CLI, via HostFacts).
   * Rejects when the binary cannot run: VMM_NOT_FOUND, COMMAND_FAILED or TIMEOUT.
   */
  version(): Promise<string>;
}
