import { BangerError } from "../../domain/errors.js";
import type { Runner } from "../../ports/runner.js";
import { which } from "./which.js";

const VERSION_TIMEOUT_MS = 10_000;

/**
 * First non-empty line `<bin> --version` prints (stdout, else stderr). Throws VMM_NOT_FOUND when
 * the binary is not there, COMMAND_FAILED / TIMEOUT when it cannot run.
 */
export async function binaryVersion(runner: Runner, bin: string, hint: string): Promise<{ path: string; line: string }> {
  const path = which(bin);
  if (!path) throw new BangerError("VMM_NOT_FOUND", `${bin} was not found${bin.includes("/") ? "" : " on PATH"}`, { hint });
  const res = await runner.run(path, ["--version"], { timeoutMs: VERSION_TIMEOUT_MS });
  const line = `${res.stdout}\n${res.stderr}`
    .split("\n")
    .map((l) => l.trim())
    .find(Boolean);
  if (!line) throw new BangerError("COMMAND_FAILED", `${path} --version printed nothing`, { hint });
  return { path, line };
}
