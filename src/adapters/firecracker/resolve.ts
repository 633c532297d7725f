import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { BangerError } from "../../domain/errors.js";

const NOT_FOUND_HINT =
  'set `firecracker_bin` in the config to the binary\'s path, put `firecracker` on PATH, or set `vmm = "qemu"` to use the QEMU driver';

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The absolute path of the firecracker binary. A configured value with a '/'
 * is taken as a path and must be an executable file; a bare name (or nothing,
 * meaning "firecracker") is looked up on PATH.
 */
export function resolveFirecracker(bin?: string, envPath: string | undefined = process.env.PATH): string {
  const wanted = bin?.trim() || "firecracker";
  if (wanted.includes("/")) {
    const abs = resolve(wanted);
    if (isExecutableFile(abs)) return abs;
    throw new BangerError("VMM_NOT_FOUND", `firecracker_bin ${abs} does not exist or is not an executable file`, { hint: NOT_FOUND_HINT });
  }
  for (const dir of (envPath ?? "").split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, wanted);
    if (isExecutableFile(candidate)) return resolve(candidate);
  }
  throw new BangerError("VMM_NOT_FOUND", `${wanted} was not found on PATH`, { hint: NOT_FOUND_HINT });
}
