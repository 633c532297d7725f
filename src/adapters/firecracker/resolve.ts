import { dirname, join, resolve } from "node:path";
import { BangerError } from "../../domain/errors.js";
import { which } from "../exec/which.js";

export const FIRECRACKER_NOT_FOUND_HINT =
  'set `firecracker_bin` in the config to the binary\'s path, put `firecracker` on PATH, or set `vmm = "qemu"` to use the QEMU driver';

/**
 * The absolute path of the firecracker binary. A configured value with a '/'
 * is taken as a path and must be an executable file; a bare name (or nothing,
 * meaning "firecracker") is looked up on PATH (see which()).
 */
export function resolveFirecracker(bin?: string, envPath: string | undefined = process.env.PATH): string {
  const wanted = bin?.trim() || "firecracker";
  if (wanted.includes("/")) {
    const abs = resolve(wanted);
    if (which(abs)) return abs;
    throw new BangerError("VMM_NOT_FOUND", `firecracker_bin ${abs} does not exist or is not an executable file`, { hint: FIRECRACKER_NOT_FOUND_HINT });
  }
  const found = which(wanted, envPath ?? "");
  if (found) return resolve(found);
  throw new BangerError("VMM_NOT_FOUND", `${wanted} was not found on PATH`, { hint: FIRECRACKER_NOT_FOUND_HINT });
}

const JAILER_HINT = "set `jailer_bin` to the jailer's path (from the same Firecracker release), or leave it unset to run without the jailer";

/**
 * The jailer to use, or undefined to run without one. A configured jailer_bin must exist (a path)
 * or be on PATH (a name); unset, `jailer` beside the firecracker binary wins over one on PATH,
 * since jailer.md wants the jailer of the same release as firecracker.
 */
export function resolveJailer(bin: string | undefined, firecrackerBin: string | undefined, envPath: string | undefined = process.env.PATH): string | undefined {
  const wanted = bin?.trim();
  if (wanted) {
    const found = wanted.includes("/") ? which(resolve(wanted)) : which(wanted, envPath ?? "");
    if (found) return resolve(found);
    throw new BangerError(
      "INVALID_CONFIG",
      `jailer_bin ${wanted} ${wanted.includes("/") ? "does not exist or is not an executable file" : "was not found on PATH"}`,
      {
        hint: JAILER_HINT,
      },
    );
  }
  let fc: string | undefined;
  try {
    fc = resolveFirecracker(firecrackerBin, envPath);
  } catch {
    fc = undefined;
  }
  const beside = fc ? which(join(dirname(fc), "jailer")) : undefined;
  const found = beside ?? which("jailer", envPath ?? "");
  return found ? resolve(found) : undefined;
}
