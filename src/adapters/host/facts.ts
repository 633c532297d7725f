import { accessSync, closeSync, constants, mkdirSync, openSync } from "node:fs";
import type { HostCheckConfig } from "../../app/doctor.js";
import type { LoadedConfig } from "../../config/load.js";
import type { HostFacts } from "../../ports/host.js";
import type { Runner } from "../../ports/runner.js";
import { ExecRunner } from "../exec/runner.js";
import { which } from "../exec/which.js";
import { resolveFirecracker } from "../firecracker/resolve.js";
import { hostNameservers } from "../net/resolv.js";
import { probeAccel } from "../qemu/accel.js";
import { checkKey } from "../ssh/keys.js";

const VERSION_TIMEOUT_MS = 5_000;

/** The host as doctor and the boot arguments see it; the CLI's offline doctor builds the same. */
export function hostFacts(cfg: LoadedConfig, runner: Runner = new ExecRunner()): HostFacts {
  const c = cfg.config;
  return {
    async vmmVersion(kind) {
      const bin = kind === "firecracker" ? resolveFirecracker(c.firecracker_bin) : c.qemu_bin;
      const { stdout } = await runner.run(bin, ["--version"], { timeoutMs: VERSION_TIMEOUT_MS });
      return `${bin}: ${stdout.split("\n")[0].trim()}`;
    },
    async accelVerdict() {
      if (c.qemu_accel !== "auto") return { accel: c.qemu_accel, reason: "forced by qemu_accel in the config" };
      return probeAccel(c.qemu_bin, cfg.paths.stateDir);
    },
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
