import { closeSync, openSync } from "node:fs";
import { chmod, mkdir, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileTail } from "../exec/tail.js";
import type { DriverLog } from "../exec/log.js";
import { BangerError } from "../../domain/errors.js";
import type { StopResult, Vmm, VmmHandle, VmmSpec } from "../../ports/vmm.js";
import { ExecRunner } from "../exec/runner.js";
import { processAlive, waitForExit } from "../exec/proc.js";
import { spawnUntilReady } from "../exec/spawn.js";
import { runStopSequence, type StopRequestOutcome } from "../exec/stop.js";
import { binaryVersion } from "../exec/version.js";
import { DEFAULT_API_TIMEOUT_MS, withClient } from "./client.js";
import { FIRECRACKER_NOT_FOUND_HINT, resolveFirecracker } from "./resolve.js";
import { actionRequest, configureRequests, instanceId } from "./schemas.js";
import {
  DEFAULT_CGROUP_ROOT,
  DEFAULT_PARENT_CGROUP,
  jailOfSocket,
  IN_JAIL,
  jailedSpec,
  jailLayout,
  jailerArgv,
  populateJail,
  removeJail,
  type JailerOptions,
  type JailLayout,
} from "./jail.js";
import { firecrackerPaths, firecrackerSocket } from "./layout.js";

import { dropPrivilegesArgv, giveToVmmUser, type VmmUser } from "../exec/privilege.js";

export { resolveFirecracker, resolveJailer } from "./resolve.js";
export { firecrackerPaths } from "./layout.js";

export type { DriverLog } from "../exec/log.js";

export interface FirecrackerVmmOptions {
  /** firecracker_bin from the config: a path, or a name on PATH; unset means `firecracker` on PATH. */
  bin?: string;
  log: DriverLog;
  /** Deadline for each API request. */
  apiTimeoutMs?: number;
  /** How long spawn waits for the API socket to answer. */
  spawnTimeoutMs?: number;
  /** Command prefix, e.g. ["ip", "netns", "exec", ns], so the VMM sees a TAP inside a netns; it must exec, not fork. */
  wrap?: string[];
  /** Runs `--version` and spawns the VMM; a fresh ExecRunner by default. */
  runner?: ExecRunner;
  /** Without a jailer: run firecracker as this unprivileged user (vmm_user). */
  user?: VmmUser;
  /** Start each VM through the jailer (docs/security-host.md); its user replaces `user`. */
  jailer?: JailerOptions;
  /**
   * Where jails are built (`<state_dir>/jail`). Given even without a jailer, so a VM started
   * jailed before a config change is still cleaned up.
   */
  chrootBase?: string;
}

// sun_path holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH = 107;
// Real firecracker answers in milliseconds; the margin is for loaded CI hosts and the node-based test fake.
const DEFAULT_SPAWN_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 20_000;

/** Firecracker driver: one process per VM, configured over its HTTP API socket. */
export class FirecrackerVmm implements Vmm {
  readonly kind = "firecracker" as const;

  controlSocket(dir: string): string {
    return firecrackerSocket(dir, "api", this.opts.chrootBase);
  }

  consoleLog(dir: string): string {
    return firecrackerPaths(dir).consoleLog;
  }
  // Firecracker emulates no power-off: a halted guest leaves the process running. A reboot ends it.
  readonly guestStopCommand = "reboot" as const;
  private readonly apiTimeoutMs: number;
  private readonly runner: ExecRunner;

  constructor(private readonly opts: FirecrackerVmmOptions) {
    this.apiTimeoutMs = opts.apiTimeoutMs ?? DEFAULT_API_TIMEOUT_MS;
    this.runner = opts.runner ?? new ExecRunner();
  }

  private async failed(dir: string, message: string, hint?: string): Promise<BangerError> {
    const paths = firecrackerPaths(dir);
    const out = (await fileTail(paths.consoleLog, 8)).replace(/\n/g, " | ");
    return new BangerError("VMM_FAILED", out ? `${message}; console.log: ${out}` : message, {
      hint: hint ?? `see ${paths.consoleLog} and ${paths.vmmLog}`,
    });
  }

  async spawn(spec: VmmSpec, signal?: AbortSignal): Promise<VmmHandle> {
    signal?.throwIfAborted();
    const bin = resolveFirecracker(this.opts.bin);
    const paths = firecrackerPaths(spec.dir);
    const jail = this.opts.jailer && this.opts.chrootBase ? jailLayout(this.opts.chrootBase, spec.dir, basename(bin)) : undefined;
    const apiSocket = jail ? join(jail.root, IN_JAIL.apiSocket) : paths.apiSocket;
    for (const p of [apiSocket, jail ? join(jail.root, IN_JAIL.vsockSocket) : paths.vsockSocket]) {
      if (Buffer.byteLength(p) > MAX_SOCKET_PATH) {
        throw new BangerError("VMM_FAILED", `socket path ${p} is longer than ${MAX_SOCKET_PATH} bytes`, { hint: "set a shorter state_dir in the config" });
      }
    }
    await mkdir(spec.dir, { recursive: true });
    // Firecracker refuses to start when its API socket path already exists.
    await rm(paths.apiSocket, { force: true });
    const user = this.opts.jailer?.user ?? this.opts.user;
    // The VM dir holds disks with the guest's host key and service password: never world-readable.
    if (user) await giveToVmmUser(user, spec.dir, [spec.rootfs, spec.workDisk], [paths.vmmLog]);
    else await chmod(spec.dir, 0o700);

    let launch: string[];
    if (jail && this.opts.jailer) {
      // The jail is ours from its first directory: any failure below removes it.
      try {
        await this.prepareJailRoot(jail);
        await populateJail(jail, spec, paths.vmmLog);
      } catch (e) {
        await this.dropJail(jail, spec.name);
        throw e;
      }
      const j = this.opts.jailer;
      launch = [
        j.bin,
        ...jailerArgv({
          id: jail.id,
          execFile: bin,
          uid: j.user.uid,
          gid: j.user.gid,
          chrootBase: this.opts.chrootBase!,
          vcpus: spec.vcpus,
          memoryMib: spec.memoryMib,
          parentCgroup: j.parentCgroup ?? DEFAULT_PARENT_CGROUP,
        }),
      ];
    } else {
      launch = [...(user ? dropPrivilegesArgv(user) : []), bin, "--api-sock", paths.apiSocket, "--id", instanceId(spec.vmId)];
    }
    const [cmd, ...argv] = [...(this.opts.wrap ?? []), ...launch];
    this.opts.log.debug({ vm: spec.name, stage: "spawn", argv: [cmd, ...argv] }, "spawning firecracker");
    try {
      const { pid, pidStart } = await spawnUntilReady(this.runner, {
        cmd,
        args: argv,
        // Firecracker's stdout is the guest serial console; append so a restart keeps history.
        output: paths.consoleLog,
        append: true,
        what: jail ? "jailer/firecracker" : "firecracker",
        socket: "API socket",
        ready: () => withClient(apiSocket, Math.min(1_000, this.apiTimeoutMs), (c) => c.get("/")),
        timeoutMs: this.opts.spawnTimeoutMs ?? DEFAULT_SPAWN_TIMEOUT_MS,
        pollMs: 20,
        signal,
        failed: (message) => this.failed(spec.dir, message),
      });
      this.opts.log.debug({ vm: spec.name, stage: "spawn", pid, jailed: !!jail }, "firecracker spawned");
      return { kind: "firecracker", pid, pidStart, controlSocket: apiSocket, consoleLog: paths.consoleLog };
    } catch (e) {
      if (jail) await this.dropJail(jail, spec.name);
      throw e;
    }
  }

  /** `<chrootBase>/<exec>/<id>` are root's and traversable only; the root below is the VM's once the jailer chowns it. */
  private async prepareJailRoot(jail: JailLayout): Promise<void> {
    for (const d of [this.opts.chrootBase!, dirname(jail.jailDir), jail.jailDir]) {
      await mkdir(d, { recursive: true, mode: 0o711 });
      await chmod(d, 0o711);
    }
  }

  private cgroupDir(id: string): string {
    const j = this.opts.jailer;
    return join(j?.cgroupRoot ?? DEFAULT_CGROUP_ROOT, j?.parentCgroup ?? DEFAULT_PARENT_CGROUP, id);
  }

  private async dropJail(jail: JailLayout, vm: string): Promise<void> {
    await removeJail(jail, this.cgroupDir(jail.id)).catch((e: unknown) =>
      this.opts.log.warn({ vm, stage: "jail", err: (e as Error).message }, "cannot remove the VM's jail"),
    );
  }

  /** The jail a handle's API socket lives in, or undefined for an unjailed firecracker. */
  private jailOf(handle: VmmHandle): JailLayout | undefined {
    return this.opts.chrootBase ? jailOfSocket(this.opts.chrootBase, handle.controlSocket) : undefined;
  }

  async configure(handle: VmmHandle, spec: VmmSpec, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (!this.isAlive(handle)) throw await this.failed(spec.dir, "firecracker is not running");
    const paths = firecrackerPaths(spec.dir);
    const jail = this.jailOf(handle);
    // Jailed, firecracker is given paths inside its chroot; the files are already linked there.
    const requests = jail
      ? configureRequests(jailedSpec(spec), { ...paths, apiSocket: handle.controlSocket, vsockSocket: `/${IN_JAIL.vsockSocket}`, vmmLog: `/${IN_JAIL.vmmLog}` })
      : configureRequests(spec, { ...paths, apiSocket: handle.controlSocket });
    // Firecracker binds uds_path itself and fails if it exists; the logger needs its file to exist.
    await rm(jail ? join(jail.root, IN_JAIL.vsockSocket) : paths.vsockSocket, { force: true });
    closeSync(openSync(paths.vmmLog, "a"));
    await withClient(handle.controlSocket, this.apiTimeoutMs, async (c) => {
      for (const req of requests) {
        await c.send(req, signal);
        this.opts.log.debug({ vm: spec.name, method: req.method, path: req.path }, "firecracker configured");
      }
    });
  }

  async start(handle: VmmHandle, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const dir = dirname(handle.consoleLog);
    if (!this.isAlive(handle)) throw await this.failed(dir, "firecracker is not running");
    // InstanceStart loads kernel and initrd into guest memory: slower than a config call.
    await withClient(handle.controlSocket, Math.max(this.apiTimeoutMs, START_TIMEOUT_MS), async (c) => {
      await c.send(actionRequest("InstanceStart"), signal);
      const info = await c.get<{ state?: string }>("/", signal);
      if (info.state !== "Running") {
        throw await this.failed(dir, `guest did not start: firecracker reports state ${JSON.stringify(info.state)}`);
      }
    });
  }

  private async cleanup(handle: VmmHandle): Promise<void> {
    const jail = this.jailOf(handle);
    if (jail) return this.dropJail(jail, jail.id);
    const paths = firecrackerPaths(dirname(handle.controlSocket));
    await Promise.all([rm(paths.apiSocket, { force: true }), rm(paths.vsockSocket, { force: true })]);
  }

  async stop(handle: VmmHandle, opts: { timeoutMs: number; graceMs?: number }): Promise<StopResult> {
    try {
      return await runStopSequence({
        pid: handle.pid,
        pidStart: handle.pidStart,
        ...opts,
        what: "firecracker",
        request: (budgetMs) => this.sendCtrlAltDel(handle, budgetMs),
        onSignal: (reason) => this.opts.log.warn({ pid: handle.pid, reason }, "terminating firecracker"),
      });
    } finally {
      await this.cleanup(handle);
    }
  }

  /**
   * Ctrl+Alt+Del reaches the guest through the emulated i8042; a banger image maps it to a reboot,
   * and a rebooting guest ends the Firecracker process. A halted guest ignores it (204 all the same).
   */
  private async sendCtrlAltDel(handle: VmmHandle, budgetMs: number): Promise<StopRequestOutcome> {
    const timeout = Math.max(500, Math.min(this.apiTimeoutMs, budgetMs));
    try {
      return await withClient(handle.controlSocket, timeout, async (c) => {
        const info = await c.get<{ state?: string }>("/");
        // Before InstanceStart there is no guest to ask, and Firecracker refuses the action.
        if (info.state === "Not started") return "no-guest";
        await c.send(actionRequest("SendCtrlAltDel"));
        return "sent";
      });
    } catch (e) {
      // Often the guest is already rebooting and the process is closing its socket: keep waiting.
      this.opts.log.warn({ pid: handle.pid, err: (e as Error).message }, "firecracker SendCtrlAltDel failed; waiting for the process to exit");
      return "unreachable";
    }
  }

  async kill(handle: VmmHandle): Promise<void> {
    if (this.isAlive(handle)) {
      try {
        process.kill(handle.pid, "SIGKILL");
      } catch {
        // already gone between the check and the signal
      }
      if (!(await waitForExit(handle.pid, handle.pidStart, 5_000))) {
        throw new BangerError("VMM_FAILED", `firecracker pid ${handle.pid} survived SIGKILL for 5 s`, {
          hint: "check `ps -o stat -p <pid>` for a process stuck in D state",
        });
      }
    }
    await this.cleanup(handle);
  }

  isAlive(handle: VmmHandle): boolean {
    return processAlive(handle.pid, handle.pidStart);
  }

  /** `<path>: <first line of firecracker --version>`; throws VMM_NOT_FOUND / COMMAND_FAILED / TIMEOUT. */
  async version(): Promise<string> {
    const { path, line } = await binaryVersion(this.runner, resolveFirecracker(this.opts.bin), FIRECRACKER_NOT_FOUND_HINT);
    return `${path}: ${line}`;
  }
}
