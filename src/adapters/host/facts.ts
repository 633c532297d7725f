import { accessSync, closeSync, constants, mkdirSync, openSync, readFileSync, statSync } from "node:fs";
import { groupGid, lookupVmmUser, type VmmUser } from "../exec/privilege.js";
import type { DeviceAccess } from "../../ports/host.js";
import type { Runner } from "../../ports/runner.js";
import { firstBlocked, vmmPasses } from "./setup.js";
import type { LoadedConfig } from "../../config/load.js";
import type { HostCheckConfig, HostFacts } from "../../ports/host.js";
import type { Vmm } from "../../ports/vmm.js";
import { ExecRunner } from "../exec/runner.js";
import { which } from "../exec/which.js";
import { FirecrackerVmm, resolveJailer } from "../firecracker/driver.js";
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
    memAvailableMib() {
      try {
        const kib = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1];
        return kib === undefined ? undefined : Math.floor(Number(kib) / 1024);
      } catch {
        return undefined;
      }
    },
    which: (tool) => which(tool),
    kvm() {
      try {
        closeSync(openSync("/dev/kvm", constants.O_RDWR));
        return { ok: true, detail: "/dev/kvm opens read/write" };
      } catch (e) {
        return { ok: false, detail: `/dev/kvm: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
      }
    },
    async privilege() {
      const passwd = (() => {
        try {
          return readFileSync("/etc/passwd", "utf8").split("\n");
        } catch {
          return [];
        }
      })();
      const row = c.vmm_user ? passwd.find((l) => l.startsWith(`${c.vmm_user}:`))?.split(":") : undefined;
      const kvmMembers = (() => {
        try {
          const line = readFileSync("/etc/group", "utf8")
            .split("\n")
            .find((l) => l.startsWith("kvm:"));
          return line?.split(":")[3]?.split(",") ?? [];
        } catch {
          return [];
        }
      })();
      const kvm = groupGid("kvm");
      const sock = (() => {
        try {
          const st = statSync(cfg.paths.socket);
          return { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
        } catch {
          return undefined;
        }
      })();
      const jailer = (() => {
        try {
          return { path: resolveJailer(c.jailer_bin, c.firecracker_bin) };
        } catch (e) {
          return { problem: (e as Error).message };
        }
      })();
      const root = process.getuid?.() === 0;
      const setpriv = which("setpriv");
      // Probes run as the VMM user, which only root can become.
      const probeUser = (() => {
        try {
          return root && row && setpriv ? lookupVmmUser(c.vmm_user) : undefined;
        } catch {
          return undefined; // uid 0: the vmm-user check says so
        }
      })();
      return {
        root,
        jailer: jailer.path,
        jailerProblem: jailer.problem,
        vmmUid: row ? Number(row[2]) : undefined,
        vmmInKvm: !!row && (kvmMembers.includes(c.vmm_user) || (kvm !== undefined && Number(row[3]) === kvm)),
        apiGid: groupGid(c.api_group),
        socket: sock,
        qemuSandbox: await qemuVmm().sandboxSupported(),
        setpriv,
        tun: await deviceAccess(runner, probeUser, "/dev/net/tun"),
        kvm: await deviceAccess(runner, probeUser, "/dev/kvm"),
        stateBlocked: probeUser ? await firstBlocked(runner, probeUser, cfg.paths.stateDir).catch(() => undefined) : undefined,
      };
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

/** A device node as the VMM user meets it, and what grants the access (mode, group, owner, else an ACL entry). */
async function deviceAccess(runner: Runner, user: VmmUser | undefined, dev: string): Promise<DeviceAccess> {
  let st;
  try {
    st = statSync(dev);
  } catch {
    return { present: false, ok: false };
  }
  if (!user || !(await vmmPasses(runner, user, ["-r", dev, "-a", "-w", dev]).catch(() => false))) return { present: true, ok: false };
  const mode = st.mode & 0o777;
  const via =
    (mode & 0o006) === 0o006
      ? `mode ${mode.toString(8)}`
      : st.uid === user.uid
        ? "its owner"
        : (mode & 0o060) === 0o060 && (st.gid === user.gid || user.groups.includes(st.gid))
          ? `group ${st.gid === groupGid("kvm") ? "kvm" : st.gid}`
          : "an ACL entry";
  return { present: true, ok: true, via };
}

/** The slice of the config the host checks read, for the daemon's doctor and the CLI's offline one. */
export function hostCheckConfig(cfg: LoadedConfig): HostCheckConfig {
  return {
    vmm: cfg.config.vmm,
    stateDir: cfg.paths.stateDir,
    sshKey: cfg.config.ssh_key,
    defaultSshKey: cfg.paths.defaultSshKey,
    vmmUser: cfg.config.vmm_user,
    apiGroup: cfg.config.api_group,
  };
}
