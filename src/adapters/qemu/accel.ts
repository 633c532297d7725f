import { execFile, spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { release, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { processAlive, terminate } from "../exec/proc.js";
import { withQmp } from "./qmp.js";

export interface AccelVerdict {
  accel: "kvm" | "tcg";
  reason: string;
}

interface CachedVerdict extends AccelVerdict {
  key: string;
  probedAt: string;
}

const VERSION_TIMEOUT_MS = 10_000;
const PROBE_TIMEOUT_MS = 10_000;

/** First line of `<bin> --version`; throws when the binary cannot run. */
export function qemuVersion(bin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, ["--version"], { timeout: VERSION_TIMEOUT_MS }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout.split("\n")[0].trim());
    });
  });
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
export async function qemuKvmWorks(bin: string): Promise<AccelVerdict> {
  const dir = await mkdtemp(join(tmpdir(), "banger-accel-"));
  const qmp = join(dir, "qmp.sock");
  const child = spawn(bin, [
    "-M", "microvm,acpi=on", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
    "-nodefaults", "-no-user-config", "-display", "none", "-m", "64", "-S",
    "-qmp", `unix:${qmp},server=on,wait=off`,
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  let exited = false;
  child.on("exit", () => (exited = true));
  child.on("error", () => (exited = true));
  const pid = child.pid;
  try {
    const deadline = Date.now() + PROBE_TIMEOUT_MS;
    for (;;) {
      if (exited) return { accel: "tcg", reason: `qemu cannot start with -accel kvm: ${stderr.trim().split("\n").slice(-2).join(" | ") || "exited"}; using TCG` };
      try {
        return await withQmp(qmp, async (q) => {
          const kvm = await q.execute<{ enabled: boolean; present: boolean }>("query-kvm");
          if (!kvm.enabled) return { accel: "tcg" as const, reason: "qemu started but reports KVM disabled; using TCG" };
          await q.execute("cont");
          await sleep(500);
          const st = await q.execute<{ status: string }>("query-status");
          if (st.status === "internal-error" || st.status === "guest-panicked" || st.status === "shutdown") {
            return { accel: "tcg" as const, reason: `a KVM vCPU stopped with status ${st.status}; using TCG` };
          }
          return { accel: "kvm" as const, reason: "KVM opened read/write and a vCPU ran under qemu" };
        }, 3_000);
      } catch {
        if (Date.now() > deadline) return { accel: "tcg", reason: `qemu -accel kvm did not answer QMP within ${PROBE_TIMEOUT_MS} ms; using TCG` };
        await sleep(50);
      }
    }
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
export async function probeAccel(bin: string, stateDir: string): Promise<AccelVerdict> {
  let version: string;
  try {
    version = await qemuVersion(bin);
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
  const verdict = (await hostVerdict()) ?? (await qemuKvmWorks(bin));
  const entry: CachedVerdict = { ...verdict, key, probedAt: new Date().toISOString() };
  try {
    await mkdir(stateDir, { recursive: true });
    await writeFile(cacheFile, JSON.stringify(entry, null, 2) + "\n");
  } catch {
    // a read-only state dir only costs a re-probe next time
  }
  return verdict;
}
