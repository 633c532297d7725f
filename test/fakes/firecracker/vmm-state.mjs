// The fake's model of one Firecracker process: pre-boot configuration,
// InstanceStart, and the semantic rules real Firecracker enforces beyond the
// schema. Every rejection names its rule so tests can assert which one fired.
import { accessSync, constants, existsSync, appendFileSync, statSync, unlinkSync } from "node:fs";
import { createHybridVsockServer } from "./hybrid-vsock.mjs";
import { createServer } from "node:net";
import { createSnapshot, loadSnapshot, patchDrive, patchVm } from "./snapshot.mjs";

// Resources Firecracker only accepts before InstanceStart.
const PRE_BOOT_ONLY = new Set([
  "PUT /machine-config",
  "PATCH /machine-config",
  "PUT /boot-source",
  "PUT /drives/{drive_id}",
  "PUT /network-interfaces/{iface_id}",
  "PUT /vsock",
  "PUT /logger",
  "PUT /metrics",
  "PUT /cpu-config",
  "PUT /balloon",
  "PUT /entropy",
  "PUT /serial",
  "PUT /mmds/config",
  "PUT /snapshot/load",
]);

// x86 Firecracker reserves 2048 bytes for the kernel command line, NUL included.
const MAX_CMDLINE = 2047;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const RESOURCE_ID_RE = /^[\p{L}\p{N}_]+$/u;

export function fault(rule, message) {
  return { status: 400, body: { fault_message: `${message} [rule: ${rule}]` } };
}

const NO_CONTENT = { status: 204 };

function hostFileProblem(path, { write }) {
  try {
    const st = statSync(path);
    if (st.isDirectory()) return `${path} is a directory`;
    accessSync(path, write ? constants.R_OK | constants.W_OK : constants.R_OK);
    return null;
  } catch (e) {
    return `${path}: ${e.code ?? e.message}`;
  }
}

export class FakeVmm {
  /**
   * @param {object} o
   * @param {string} o.id instance id from --id
   * @param {string} o.version reported vmm_version
   * @param {boolean} o.checkTap require host_dev_name to exist in /sys/class/net
   * @param {null | { start(cfg: object): Promise<void>, ctrlAltDel(): Promise<void> }} o.boot real-boot backend
   * @param {"reboot" | "poweroff" | "ignore"} [o.ctrlAltDel] what the modelled guest (no boot backend) does on Ctrl-Alt-Del
   * @param {(code: number) => void} o.exit ends the process
   * @param {(line: string) => void} o.console writes to the guest console (stdout)
   */
  constructor(o) {
    this.o = o;
    this.started = false;
    // Post-boot, or after a snapshot load: vCPUs stopped by PATCH /vm (a load without resume_vm leaves them so).
    this.paused = false;
    // Set by PUT /machine-config: a process configured for a boot can no longer load a snapshot.
    this.machineSet = false;
    this.restoredFrom = null;
    // The modelled guest when no real one boots: "off" before InstanceStart, then "running" or "halted".
    this.guest = "off";
    this.machine = { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false };
    this.bootSource = null;
    this.drives = new Map();
    this.ifaces = new Map();
    this.vsock = null;
    this.vsockServer = null;
    this.logPath = null;
    this.metricsPath = null;
  }

  log(line) {
    if (!this.logPath) return;
    try {
      appendFileSync(this.logPath, `[fake firecracker ${this.o.id}] ${line}\n`);
    } catch {
      // a vanished log file must not take the API down
    }
  }

  instanceInfo() {
    const state = !this.started ? "Not started" : this.paused ? "Paused" : "Running";
    return { id: this.o.id, state, vmm_version: this.o.version, app_name: "Firecracker" };
  }

  /** Any resource other than the logger and metrics configured: a snapshot load is no longer allowed. */
  configuredForBoot() {
    return this.machineSet || this.bootSource !== null || this.drives.size > 0 || this.ifaces.size > 0 || this.vsock !== null;
  }

  hostFileProblem(path, opts) {
    return hostFileProblem(path, opts);
  }

  /** Full config in the shape of GET /vm/config. */
  vmConfig() {
    const cfg = {
      "machine-config": this.machine,
      drives: [...this.drives.values()],
      "network-interfaces": [...this.ifaces.values()],
    };
    if (this.bootSource) cfg["boot-source"] = this.bootSource;
    if (this.vsock) cfg.vsock = this.vsock;
    if (this.logPath) cfg.logger = { log_path: this.logPath };
    if (this.metricsPath) cfg.metrics = { metrics_path: this.metricsPath };
    return cfg;
  }

  /** Checks path ids, then pre-boot state, then dispatches. Schema validation happened before. */
  async handle(route, body) {
    const key = `${route.method} ${route.template}`;
    for (const [name, value] of Object.entries(route.params)) {
      if (!value) return fault("resource-id-charset", `The ID cannot be empty (${name}).`);
      if (!RESOURCE_ID_RE.test(value)) {
        return fault("resource-id-charset", `API Resource IDs can only contain alphanumeric characters and underscores (${name}=${JSON.stringify(value)}).`);
      }
    }
    if (this.started && PRE_BOOT_ONLY.has(key)) {
      return fault("pre-boot-only", `The requested operation is not supported after starting the microVM: ${key}.`);
    }
    switch (key) {
      case "GET /":
        return { status: 200, body: this.instanceInfo() };
      case "GET /version":
        return { status: 200, body: { firecracker_version: this.o.version } };
      case "GET /machine-config":
        return { status: 200, body: this.machine };
      case "GET /vm/config":
        return { status: 200, body: this.vmConfig() };
      case "PUT /machine-config":
        return this.setMachine({ smt: false, track_dirty_pages: false, ...body });
      case "PATCH /machine-config":
        return this.setMachine({ ...this.machine, ...body });
      case "PUT /boot-source":
        return this.setBootSource(body);
      case "PUT /drives/{drive_id}":
        return this.putDrive(route.params.drive_id, body);
      case "PUT /network-interfaces/{iface_id}":
        return this.putIface(route.params.iface_id, body);
      case "PUT /vsock":
        return this.putVsock(body);
      case "PUT /logger":
        return this.putSink("logger", body.log_path);
      case "PUT /metrics":
        return this.putSink("metrics", body.metrics_path);
      case "PUT /actions":
        return this.action(body.action_type);
      case "PATCH /vm":
        return patchVm(this, fault, body);
      case "PUT /snapshot/create":
        return createSnapshot(this, fault, body);
      case "PUT /snapshot/load":
        return loadSnapshot(this, fault, body);
      case "PATCH /drives/{drive_id}":
        return patchDrive(this, fault, route.params.drive_id, body);
      default:
        return fault("not-implemented-in-fake", `The fake firecracker accepts ${key} per the spec but does not implement it.`);
    }
  }

  setMachine(cfg) {
    if (cfg.mem_size_mib < 1) return fault("machine-config-values", "The memory size (MiB) is invalid.");
    if (cfg.smt && cfg.vcpu_count > 1 && cfg.vcpu_count % 2 !== 0) {
      return fault("machine-config-values", "With SMT enabled the vCPU count must be 1 or an even number.");
    }
    if (cfg.huge_pages === "2M" && cfg.mem_size_mib % 2 !== 0) {
      return fault("machine-config-values", "With 2M huge pages mem_size_mib must be a multiple of 2.");
    }
    this.machine = cfg;
    this.machineSet = true;
    return NO_CONTENT;
  }

  setBootSource(body) {
    const kernelProblem = hostFileProblem(body.kernel_image_path, { write: false });
    if (kernelProblem) return fault("host-file-exists", `The kernel file cannot be opened: ${kernelProblem}`);
    if (body.initrd_path !== undefined) {
      const initrdProblem = hostFileProblem(body.initrd_path, { write: false });
      if (initrdProblem) return fault("host-file-exists", `The initrd file cannot be opened: ${initrdProblem}`);
    }
    if (Buffer.byteLength(body.boot_args ?? "") > MAX_CMDLINE) {
      return fault("boot-args-length", `The kernel command line is longer than ${MAX_CMDLINE} bytes.`);
    }
    this.bootSource = body;
    return NO_CONTENT;
  }

  putDrive(pathId, body) {
    if (pathId !== body.drive_id) return fault("path-id-matches-body", "The id from the path does not match the id from the body!");
    if (body.socket === undefined && (body.path_on_host === undefined || body.is_read_only === undefined)) {
      return fault("virtio-block-fields", "A virtio-block drive needs path_on_host and is_read_only.");
    }
    if (body.is_root_device) {
      for (const [id, d] of this.drives) {
        if (id !== body.drive_id && d.is_root_device) return fault("single-root-device", `A root block device already exists! (${id})`);
      }
    }
    if (body.path_on_host !== undefined) {
      const problem = hostFileProblem(body.path_on_host, { write: !body.is_read_only });
      if (problem) return fault("host-file-exists", `Cannot open block device. Invalid permission/path: ${problem}`);
    }
    this.drives.set(body.drive_id, body);
    return NO_CONTENT;
  }

  putIface(pathId, body) {
    if (pathId !== body.iface_id) return fault("path-id-matches-body", "The id from the path does not match the id from the body!");
    if (body.guest_mac !== undefined && !MAC_RE.test(body.guest_mac)) {
      return fault("mac-format", `Invalid MAC address ${JSON.stringify(body.guest_mac)}.`);
    }
    for (const [id, n] of this.ifaces) {
      if (id === body.iface_id) continue;
      if (n.host_dev_name === body.host_dev_name) return fault("unique-host-dev", `The host device ${body.host_dev_name} is already used by ${id}.`);
      if (body.guest_mac && n.guest_mac?.toLowerCase() === body.guest_mac.toLowerCase()) {
        return fault("unique-guest-mac", `The guest MAC address ${body.guest_mac} is already in use by ${id}.`);
      }
    }
    if (this.o.checkTap && !existsSync(`/sys/class/net/${body.host_dev_name}/tun_flags`)) {
      return fault("tap-exists", `Open tap device failed: no TAP device named ${body.host_dev_name} on this host.`);
    }
    this.ifaces.set(body.iface_id, body);
    return NO_CONTENT;
  }

  async putVsock(body) {
    // Like Firecracker: drop the previous device (and its socket) before binding the new path.
    await this.closeVsock({ unlink: true });
    if (existsSync(body.uds_path)) {
      return fault("vsock-uds-absent", `Cannot create backend for vsock device: ${body.uds_path} already exists.`);
    }
    // Firecracker binds uds_path when the device is configured; traffic flows once the guest runs.
    const server = createHybridVsockServer({
      listeners: this.o.vsockListeners ?? new Map(),
      guestRunning: () => this.started && (this.o.boot ? true : this.guest === "running"),
      serialSocket: () => this.o.boot?.agentSocket,
      log: (line) => this.log(line),
    });
    try {
      await new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(body.uds_path, resolve);
      });
    } catch (e) {
      return fault("vsock-uds-absent", `Cannot create backend for vsock device: ${e.code ?? e.message}`);
    }
    this.vsock = body;
    this.vsockServer = server;
    return NO_CONTENT;
  }

  /** Close the host side of the vsock; unlink the socket file too when asked. */
  async closeVsock({ unlink }) {
    const server = this.vsockServer;
    const path = this.vsock?.uds_path;
    this.vsockServer = null;
    if (server) await new Promise((resolve) => server.close(() => resolve()));
    if (unlink && path) {
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }
  }

  putSink(kind, path) {
    const field = kind === "logger" ? "logPath" : "metricsPath";
    if (this[field]) return fault("configure-once", `The ${kind} is already initialized.`);
    const problem = hostFileProblem(path, { write: true });
    if (problem) return fault("host-file-exists", `Failed to open the ${kind} target (it must exist, as a file or named pipe): ${problem}`);
    this[field] = path;
    this.log(`${kind} configured`);
    return NO_CONTENT;
  }

  async action(type) {
    if (type === "FlushMetrics") {
      if (!this.metricsPath) return fault("metrics-configured", "The metrics system is not initialized.");
      appendFileSync(this.metricsPath, `${JSON.stringify({ utc_timestamp_ms: Date.now(), fake: true })}\n`);
      return NO_CONTENT;
    }
    if (type === "SendCtrlAltDel") {
      if (!this.started) return fault("needs-running-vm", "The requested operation is not supported before starting the microVM.");
      // Firecracker only injects the keys; what happens next is the guest's business, after the 204.
      return { status: 204, after: () => this.ctrlAltDel() };
    }
    if (type !== "InstanceStart") return fault("action-type", `Unknown action_type ${JSON.stringify(type)}.`);
    if (this.started) return fault("start-once", "The requested operation is not supported after starting the microVM: InstanceStart.");
    if (!this.bootSource) return fault("start-needs-boot-source", "Cannot start microvm without kernel configuration.");
    if (this.o.boot) {
      try {
        // QEMU has no hybrid vsock: the guest's channel is its virtio-serial agent port, which the
        // uds_path listener reaches for the modelled vsock port 22 (hybrid-vsock.mjs).
        await this.o.boot.start(this.vmConfig());
      } catch (e) {
        return fault("boot-failed", `Start microvm error: ${e.message}`);
      }
    } else {
      this.o.console(`[fake firecracker] InstanceStart: ${this.machine.vcpu_count} vCPU, ${this.machine.mem_size_mib} MiB; no guest runs (FAKE_FC_BOOT is unset)`);
    }
    this.started = true;
    if (!this.o.boot) this.guest = "running";
    this.log("microVM started");
    return NO_CONTENT;
  }

  async ctrlAltDel() {
    this.log("SendCtrlAltDel received");
    // Paused vCPUs run no keyboard driver: the keys are not acted on (Firecracker still answers 204).
    if (this.paused) return this.o.console("[fake firecracker] Ctrl-Alt-Del ignored: the microVM is paused");
    if (this.o.boot) {
      // The real guest decides; the boot backend ends the process if it reboots.
      await this.o.boot.ctrlAltDel().catch((e) => this.o.console(`[fake firecracker] Ctrl-Alt-Del injection failed: ${e.message}`));
      return;
    }
    // A halted guest runs no keyboard driver: the keys go nowhere and the process stays.
    if (this.guest !== "running") return this.o.console(`[fake firecracker] Ctrl-Alt-Del ignored: the guest is ${this.guest}`);
    const mapping = this.o.ctrlAltDel ?? "reboot";
    if (mapping === "reboot") this.guestReboots();
    else if (mapping === "poweroff") this.guestHalts();
    else this.o.console("[fake firecracker] Ctrl-Alt-Del ignored by the guest (FAKE_FC_CTRL_ALT_DEL=ignore)");
  }

  /**
   * The modelled guest powers off (an in-guest `poweroff`, or Ctrl-Alt-Del mapped to it).
   * Firecracker has no power-off device, so the vCPUs halt and the process keeps running.
   */
  guestHalts() {
    if (this.guest !== "running") return;
    this.guest = "halted";
    this.o.console("reboot: Power down");
    this.log("guest halted; the VMM keeps running (Firecracker has no power-off)");
  }

  /** The modelled guest reboots (reboot=k resets through the i8042): real Firecracker exits with 0. */
  guestReboots() {
    if (this.guest !== "running") return;
    this.guest = "rebooting";
    this.o.console("reboot: Restarting system");
    this.log("guest reset; exiting");
    // Roughly the time a guest spends between the request and the reset.
    setTimeout(() => this.o.exit(0), 100);
  }
}
