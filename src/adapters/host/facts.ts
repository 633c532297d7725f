import { accessSync, closeSync, constants, mkdirSync, openSync } from "node:fs";
import type { LoadedConfig } from "../../config/load.js";
import type { HostCheckConfig, HostFacts } from "../../ports/host.js";
import type { Vmm } from "../../ports/vmm.js";
import { ExecRunner } from "../exec/runner.js";
import { which } from "../exec/which.js";
import { FirecrackerVmm } from "../firecracker/driver.js";
import { hostNameservers } from "../net/resolv.js";
import { QemuVmm } from "../qemu/driver.js";
import { checkKey } from "../ssh/keys.js";

/** The host as doctor and the boot arguments see it; the CLI's offline doctor builds the same. */
/**
 * The drivers answer version and accel questions, so doctor reports exactly what a create
 * would use; the daemon passes its own (the accel probe is cached per driver), the CLI gets quiet new ones.
 */
export function hostFacts(cfg: LoadedConfig, drivers?: { firecracker(): Vmm; qemu(): QemuVmm }): HostFacts {
  const c = cfg.config;
  const runner = new ExecRunner();
  const quiet = { info() {}, warn() {}, error() {}, debug() {} };
  let fc: Vmm | undefined;
  let qemu: QemuVmm | undefined;
  const firecracker = () => (fc ??= drivers?.firecracker() ?? new FirecrackerVmm({ bin: c.firecracker_bin, log: quiet, runner }));
  const qemuVmm = () => (qemu ??= drivers?.qemu() ?? new QemuVmm({ bin: c.qemu_bin, accel: c.qemu_accel, stateDir: cfg.paths.stateDir, log: quiet, runner }));
  return {
    vmmVersion: (kind) => (kind === "firecracker" ? firecracker() : qemuVmm()).version(),
    accelVerdict: () => qemuVmm().accelVerdict(),
    async sshKeyProblem() {
      try {
        await checkKey(c.ssh_key ?? cfg.paths.defaultSshKey);
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    },
    nameservers: () => hostNameservers(),
    which: (tool) => which(tool),
    kvm() {
      try {
        closeSync(openSync("/dev/kvm", constants.O_RDWR));
        return { ok: true, detail: "/dev/kvm opens read/write" };
      } catch (e) {
        return { ok: false, detail: `/dev/kvm: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
      }
    },
    dirProblem(path) {
      try {
        mkdirSync(path, { recursive: true });
        accessSync(path, constants.W_OK);
        return undefined;
      } catch (e) {
        return `${path}: ${(e as Error).message}`;
      }
    },
  };
}

/** The slice of the config the host checks read, for the daemon's doctor and the CLI's offline one. */
export function hostCheckConfig(cfg: LoadedConfig): HostCheckConfig {
  return { vmm: cfg.config.vmm, stateDir: cfg.paths.stateDir, sshKey: cfg.config.ssh_key, defaultSshKey: cfg.paths.defaultSshKey };
}
