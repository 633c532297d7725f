import { constants } from "node:fs";
import { access, mkdir, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Runner } from "../../ports/runner.js";
import { processAlive, terminate } from "../exec/proc.js";
import { ExecRunner } from "../exec/runner.js";
import { spawnUntilReady } from "../exec/spawn.js";
import { fileTail } from "../exec/tail.js";
import { binaryVersion } from "../exec/version.js";
import { withQmp } from "./qmp.js";

export interface AccelVerdict {
  accel: "kvm" | "tcg";
  reason: string;
}

interface CachedVerdict extends AccelVerdict {
  key: string;
  probedAt: string;
}

const PROBE_TIMEOUT_MS = 10_000;

export const QEMU_NOT_FOUND_HINT = "install qemu-system-x86 or set qemu_bin in the config to the binary's path";

/** The binary's path and the first line of `<bin> --version`; throws when it cannot run. QemuVmm.version() and the accel cache key both use it. */
export function qemuVersion(runner: Runner, bin: string): Promise<{ path: string; line: string }> {
  return binaryVersion(runner, bin, QEMU_NOT_FOUND_HINT);
}

function cpuFlags(cpuinfo: string): Set<string> {
  const m = /^flags\s*:\s*(.*)$/m.exec(cpuinfo);
  return new Set(m ? m[1].split(/\s+/) : []);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Host-side checks that need no qemu: /dev/kvm usable, and the CPU can run an
 * unmodified guest. PVM (kvm_pvm) exposes /dev/kvm without vmx/svm; only
 * PVM-aware guest kernels run there, stock ones die in the emulator.
 */
async function hostVerdict(): Promise<AccelVerdict | undefined> {
  try {
    const fh = await open("/dev/kvm", "r+");
    await fh.close();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return { accel: "tcg", reason: `cannot open /dev/kvm read/write (${code}); using TCG` };
  }
  const flags = cpuFlags(await readFile("/proc/cpuinfo", "utf8").catch(() => ""));
  if (!flags.has("vmx") && !flags.has("svm")) {
    if (await exists("/sys/module/kvm_pvm")) {
      return { accel: "tcg", reason: "KVM here is paravirtual (kvm_pvm, no vmx/svm CPU flag): stock guest kernels cannot run; using TCG" };
    }
    return { accel: "tcg", reason: "the CPU has no vmx/svm flag, so /dev/kvm cannot run an unmodified guest; using TCG" };
  }
  return undefined;
}

/**
 * Start qemu with -accel kvm, confirm QMP reports KVM enabled, let the firmware
 * run briefly and check the vCPU did not hit an internal error.
 */
export async function qemuKvmWorks(bin: string, runner = new ExecRunner()): Promise<AccelVerdict> {
  const dir = await mkdtemp(join(tmpdir(), "banger-accel-"));
  const qmp = join(dir, "qmp.sock");
  const log = join(dir, "qemu.log");
  let pid: number | undefined;
  try {
    try {
      ({ pid } = await spawnUntilReady(runner, {
        cmd: bin,
        args: [
          "-M",
          "microvm,acpi=on",
          "-accel",
          "kvm",
          "-cpu",
          "host,-arch-capabilities",
          "-nodefaults",
          "-no-user-config",
          "-display",
          "none",
          "-m",
          "64",
          "-S",
          "-qmp",
          `unix:${qmp},server=on,wait=off`,
        ],
        output: log,
        append: false,
        what: "qemu -accel kvm",
        socket: "QMP socket",
        ready: () => withQmp(qmp, (q) => q.execute("query-status"), 3_000),
        timeoutMs: PROBE_TIMEOUT_MS,
        pollMs: 50,
        failed: async (message, end) => {
          const tail = (await fileTail(log, 2)).replace(/\n/g, " | ");
          return new Error(end ? `qemu cannot start with -accel kvm: ${tail || end.detail}` : message);
        },
      }));
    } catch (e) {
      return { accel: "tcg", reason: `${(e as Error).message}; using TCG` };
    }
    return await withQmp(
      qmp,
      async (q) => {
        const kvm = await q.execute<{ enabled: boolean; present: boolean }>("query-kvm");
        if (!kvm.enabled) return { accel: "tcg" as const, reason: "qemu started but reports KVM disabled; using TCG" };
        await q.execute("cont");
        await sleep(500);
        const st = await q.execute<{ status: string }>("query-status");
        if (st.status === "internal-error" || st.status === "guest-panicked" || st.status === "shutdown") {
          return { accel: "tcg" as const, reason: `a KVM vCPU stopped with status ${st.status}; using TCG` };
        }
        return { accel: "kvm" as const, reason: "KVM opened read/write and a vCPU ran under qemu" };
      },
      3_000,
    ).catch((e: unknown) => ({ accel: "tcg" as const, reason: `qemu -accel kvm stopped answering QMP (${(e as Error).message}); using TCG` }));
  } finally {
    if (pid !== undefined && processAlive(pid)) await terminate(pid, undefined, 2_000);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Decide between KVM and TCG for this host. The verdict is cached in
 * <stateDir>/accel.json keyed by qemu version and host kernel release, since
 * neither can change without one of those changing.
 */
export async function probeAccel(bin: string, stateDir: string, runner = new ExecRunner()): Promise<AccelVerdict> {
  let version: string;
  try {
    version = (await qemuVersion(runner, bin)).line;
  } catch (e) {
    return { accel: "tcg", reason: `cannot run ${bin} --version (${(e as Error).message}); not cached` };
  }
  const key = `${version}|${release()}`;
  const cacheFile = join(stateDir, "accel.json");
  try {
    const cached = JSON.parse(await readFile(cacheFile, "utf8")) as CachedVerdict;
    if (cached.key === key && (cached.accel === "kvm" || cached.accel === "tcg")) return { accel: cached.accel, reason: cached.reason };
  } catch {
    // no cache or unreadable: probe again
  }
  const verdict = (await hostVerdict()) ?? (await qemuKvmWorks(bin, runner));
  const entry: CachedVerdict = { ...verdict, key, probedAt: new Date().toISOString() };
  try {
    await mkdir(stateDir, { recursive: true });
    await writeFile(cacheFile, JSON.stringify(entry, null, 2) + "\n");
  } catch {
    // a read-only state dir only costs a re-probe next time
  }
  return verdict;
}
