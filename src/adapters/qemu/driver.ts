import { closeSync, existsSync, openSync } from "node:fs";
import { chmod, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileTail } from "../exec/tail.js";
import type { DriverLog } from "../exec/log.js";
import { BangerError } from "../../domain/errors.js";
import type { StopResult, Vmm, VmmHandle, VmmSpec } from "../../ports/vmm.js";
import { hostTscKhz, processAlive, waitForExit } from "../exec/proc.js";
import { ExecRunner } from "../exec/runner.js";
import { spawnUntilReady } from "../exec/spawn.js";
import { runStopSequence, type StopRequestOutcome } from "../exec/stop.js";
import { probeAccel, qemuVersion, QEMU_NOT_FOUND_HINT, type AccelVerdict } from "./accel.js";
import { buildQemuArgs } from "./args.js";
import { withQmp } from "./qmp.js";
import { dropPrivilegesArgv, giveToVmmUser, type VmmUser } from "../exec/privilege.js";

export interface QemuVmmOptions {
  /** qemu_bin from the config: a path or a name on PATH. */
  bin: string;
  accel: "auto" | "kvm" | "tcg";
  /** Where the accel probe verdict is cached (accel.json). */
  stateDir: string;
  log: DriverLog;
  /** Command prefix for qemu, e.g. ["ip", "netns", "exec", ns]. Tests use it to reach a TAP inside a netns; it must exec, not fork. */
  wrap?: string[];
  /** How long spawn waits for QMP to answer. */
  spawnTimeoutMs?: number;
  /** Runs `--version` and the accel probe, spawns the VMM; a fresh ExecRunner by default. */
  runner?: ExecRunner;
  /** Run qemu as this unprivileged user (vmm_user); undefined runs it as the daemon's user. */
  user?: VmmUser;
}

/** Files the driver keeps in the per-VM directory. */
export function qemuPaths(dir: string): { qmp: string; console: string; vmmLog: string; agent: string } {
  return { qmp: join(dir, "qmp.sock"), console: join(dir, "console.log"), vmmLog: join(dir, "vmm.log"), agent: join(dir, "agent.sock") };
}

// sun_path is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH = 107;
const QMP_TIMEOUT_MS = 5_000;
const DEFAULT_SPAWN_TIMEOUT_MS = 15_000;

/** QEMU `microvm` driver. Config is fixed at spawn; configure() verifies it over QMP. */
export class QemuVmm implements Vmm {
  readonly kind = "qemu" as const;

  controlSocket(dir: string): string {
    return qemuPaths(dir).qmp;
  }

  consoleLog(dir: string): string {
    return qemuPaths(dir).console;
  }
  // ACPI S5 makes qemu exit; -no-reboot makes a guest reset end it too.
  readonly guestStopCommand = "poweroff" as const;
  private verdict: Promise<AccelVerdict> | undefined;
  private readonly runner: ExecRunner;

  /** The account QEMU runs as, for what it must reach beyond its VM directory (a snapshot's migration socket). */
  get vmmUser(): VmmUser | undefined {
    return this.opts.user;
  }

  constructor(private readonly opts: QemuVmmOptions) {
    this.runner = opts.runner ?? new ExecRunner();
  }

  /** KVM or TCG and why; forced by config or probed once (cached on disk). The one verdict: spawn and doctor both use it. */
  accelVerdict(): Promise<AccelVerdict> {
    if (this.opts.accel !== "auto") return Promise.resolve({ accel: this.opts.accel, reason: `forced by qemu_accel = "${this.opts.accel}"` });
    this.verdict ??= probeAccel(this.opts.bin, this.opts.stateDir, this.runner).then((v) => {
      this.opts.log.info({ accel: v.accel, reason: v.reason }, "qemu accelerator chosen");
      return v;
    });
    return this.verdict;
  }

  private sandbox: Promise<boolean> | undefined;

  /** Whether this qemu build has -sandbox (seccomp); asked once. */
  sandboxSupported(): Promise<boolean> {
    this.sandbox ??= this.runner
      .run(this.opts.bin, ["-help"], { timeoutMs: 10_000, allowFailure: true })
      .then((r) => /^-sandbox on/m.test(r.stdout))
      .catch(() => false);
    return this.sandbox;
  }

  /** A VMM_FAILED carrying the tail of vmm.log, where qemu writes why it stopped. */
  async failed(dir: string, message: string, hint?: string): Promise<BangerError> {
    const tail = await fileTail(qemuPaths(dir).vmmLog, 6);
    return new BangerError("VMM_FAILED", tail ? `${message}; vmm.log: ${tail.replace(/\n/g, " | ")}` : message, {
      hint: hint ?? `see ${qemuPaths(dir).vmmLog} and console.log`,
    });
  }

  async spawn(spec: VmmSpec, signal?: AbortSignal): Promise<VmmHandle> {
    return this.spawnWith(spec, undefined, signal);
  }

  /**
   * Spawn with the same arguments a boot uses, reading the device and memory state from
   * `stateFile`: the snapshot restore. The device set must be exactly the snapshot's, which is why
   * it shares the boot's argv builder. The file is handed over as an inherited descriptor
   * (`-incoming fd:3`), so no helper process runs (a seccomp `-sandbox spawn=deny` allows that too).
   */
  async spawnIncoming(spec: VmmSpec, stateFile: string, signal?: AbortSignal): Promise<VmmHandle> {
    let fd: number;
    try {
      fd = openSync(stateFile, "r");
    } catch (e) {
      throw new BangerError("DISK_FAILED", `cannot open snapshot state ${stateFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
        hint: "take the snapshot again",
      });
    }
    try {
      return await this.spawnWith(spec, { uri: "fd:3", fds: [fd] }, signal);
    } finally {
      closeSync(fd);
    }
  }

  private async spawnWith(spec: VmmSpec, incoming: { uri: string; fds: number[] } | undefined, signal?: AbortSignal): Promise<VmmHandle> {
    signal?.throwIfAborted();
    const paths = qemuPaths(spec.dir);
    for (const p of [paths.qmp, paths.agent]) {
      if (Buffer.byteLength(p) > MAX_SOCKET_PATH) {
        throw new BangerError("VMM_FAILED", `socket path ${p} is longer than ${MAX_SOCKET_PATH} bytes`, {
          hint: "set a shorter state_dir in the config",
        });
      }
    }
    await mkdir(spec.dir, { recursive: true });
    await Promise.all([rm(paths.qmp, { force: true }), rm(paths.agent, { force: true })]);
    const user = this.opts.user;
    // The VM dir holds disks with the guest's host key and service password: never world-readable.
    if (user) await giveToVmmUser(user, spec.dir, [spec.rootfs, spec.workDisk], [paths.console]);
    else await chmod(spec.dir, 0o700);
    const [{ accel }, sandbox] = await Promise.all([this.accelVerdict(), this.sandboxSupported()]);
    const args = buildQemuArgs(spec, {
      accel,
      tscKhz: hostTscKhz(),
      qmpSocket: paths.qmp,
      serial: { kind: "file", path: paths.console },
      paused: true,
      agentSocket: paths.agent,
      // The guest channel prefers vsock where the host has it (src/adapters/channel/guest-channel.ts asks the same).
      vhostVsock: existsSync("/dev/vhost-vsock"),
      sandbox,
      incoming: incoming?.uri,
    });
    const [cmd, ...prefix] = [...(this.opts.wrap ?? []), ...(user ? dropPrivilegesArgv(user) : []), this.opts.bin];
    this.opts.log.debug({ vm: spec.name, accel, argv: [cmd, ...prefix, ...args] }, "spawning qemu");
    const { pid, pidStart } = await spawnUntilReady(this.runner, {
      cmd,
      args: [...prefix, ...args],
      output: paths.vmmLog,
      append: false,
      inheritFds: incoming?.fds,
      what: "qemu",
      socket: "QMP socket",
      ready: () => withQmp(paths.qmp, (q) => q.execute("query-status"), 2_000),
      timeoutMs: this.opts.spawnTimeoutMs ?? DEFAULT_SPAWN_TIMEOUT_MS,
      pollMs: 25,
      signal,
      failed: (message, end) =>
        end?.kind === "spawn-error" && end.error.code === "ENOENT"
          ? new BangerError("VMM_NOT_FOUND", `cannot run ${cmd}: not found`, { hint: QEMU_NOT_FOUND_HINT })
          : this.failed(spec.dir, message),
    });
    this.opts.log.debug({ vm: spec.name, pid, accel }, "qemu spawned");
    return { kind: "qemu", pid, pidStart, controlSocket: paths.qmp, consoleLog: paths.console };
  }

  private vmDir(handle: VmmHandle): string {
    return handle.controlSocket.slice(0, handle.controlSocket.lastIndexOf("/"));
  }

  async configure(handle: VmmHandle, spec: VmmSpec, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (!this.isAlive(handle)) throw await this.failed(spec.dir, "qemu is not running");
    await withQmp(
      handle.controlSocket,
      async (q) => {
        const st = await q.execute<{ status: string; running: boolean }>("query-status");
        if (st.running || (st.status !== "prelaunch" && st.status !== "paused")) {
          throw new BangerError("VMM_FAILED", `qemu should be paused before start but its status is ${st.status}`, {
            hint: "delete the VM and create it again",
          });
        }
        const blocks = await q.execute<{ device: string; inserted?: { file: string; ro: boolean } }[]>("query-block");
        for (const [device, file] of [
          ["rootfs", spec.rootfs],
          ["work", spec.workDisk],
        ] as const) {
          const b = blocks.find((x) => x.device === device);
          if (!b?.inserted) throw new BangerError("VMM_FAILED", `qemu has no ${device} drive`, { hint: "this is a bug in the qemu driver's arguments" });
          if (b.inserted.file !== file) {
            throw new BangerError("VMM_FAILED", `qemu ${device} drive is ${b.inserted.file}, expected ${file}`, { hint: "delete the VM and create it again" });
          }
          if (b.inserted.ro) throw new BangerError("VMM_FAILED", `qemu opened ${file} read-only`, { hint: "check the file's permissions" });
        }
        if (spec.tap) {
          const info = await q.execute<string>("human-monitor-command", { "command-line": "info network" });
          if (!info.includes(`ifname=${spec.tap}`)) {
            throw new BangerError("VMM_FAILED", `qemu has no network backend on TAP ${spec.tap}`, { hint: "check `ip link show` for the TAP device" });
          }
        }
      },
      QMP_TIMEOUT_MS,
    );
  }

  async start(handle: VmmHandle, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (!this.isAlive(handle)) throw await this.failed(this.vmDir(handle), "qemu is not running");
    await withQmp(
      handle.controlSocket,
      async (q) => {
        await q.execute("cont");
        const st = await q.execute<{ status: string; running: boolean }>("query-status");
        if (!st.running) {
          throw new BangerError("VMM_FAILED", `guest did not start: qemu status is ${st.status}`, { hint: `see ${handle.consoleLog}` });
        }
      },
      QMP_TIMEOUT_MS,
    );
  }

  async stop(handle: VmmHandle, opts: { timeoutMs: number; graceMs?: number }): Promise<StopResult> {
    return runStopSequence({
      pid: handle.pid,
      pidStart: handle.pidStart,
      ...opts,
      what: "qemu",
      request: (budgetMs) => this.requestStop(handle, budgetMs),
      onSignal: (reason) => this.opts.log.warn({ pid: handle.pid, reason }, "terminating qemu"),
    });
  }

  private async requestStop(handle: VmmHandle, budgetMs: number): Promise<StopRequestOutcome> {
    try {
      await withQmp(
        handle.controlSocket,
        async (q) => {
          const st = await q.execute<{ running: boolean; status: string }>("query-status");
          if (st.running) {
            // ACPI power button: the guest shuts down and qemu exits at power-off.
            await q.execute("system_powerdown");
          } else {
            // A guest that never ran (or is paused) cannot react to the power button. qemu may
            // close the socket before it answers `quit`.
            await q.execute("quit").catch(() => undefined);
          }
        },
        Math.max(1_000, Math.min(QMP_TIMEOUT_MS, budgetMs)),
      );
      return "sent";
    } catch (e) {
      // The guest may already be powering off and qemu closing QMP: keep waiting for the exit.
      this.opts.log.warn({ pid: handle.pid, err: (e as Error).message }, "qemu stop request over QMP failed; waiting for the process to exit");
      return "unreachable";
    }
  }

  async kill(handle: VmmHandle): Promise<void> {
    if (!this.isAlive(handle)) return;
    try {
      process.kill(handle.pid, "SIGKILL");
    } catch {
      return;
    }
    if (!(await waitForExit(handle.pid, handle.pidStart, 5_000))) {
      throw new BangerError("VMM_FAILED", `qemu pid ${handle.pid} survived SIGKILL for 5 s`, {
        hint: "check `ps -o stat -p <pid>` for a process stuck in D state",
      });
    }
  }

  isAlive(handle: VmmHandle): boolean {
    return processAlive(handle.pid, handle.pidStart);
  }

  /** `<path>: <first line of qemu --version>`; throws VMM_NOT_FOUND / COMMAND_FAILED / TIMEOUT. */
  async version(): Promise<string> {
    const { path, line } = await qemuVersion(this.runner, this.opts.bin);
    return `${path}: ${line}`;
  }
}
