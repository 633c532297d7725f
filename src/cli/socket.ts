import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "smol-toml";
import { configPath, currentEnv, defaultSocket, type Env } from "../config/paths.js";

/**
 * bangerd's socket, resolved as loadConfig resolves it (flag, BANGER_SOCKET, the file's
 * `socket`, the default; `~/` expanded) but without validating the rest of the file: the
 * daemon validates its own config, and the validator costs every CLI call about 30 ms.
 * Undefined when the full loader has something to say (the file is missing where it must
 * exist, is not TOML, or its `socket` is not a non-empty string), so the caller falls back to
 * it and the user gets the same error as ever.
 */
export function quickSocket(opts: { config?: string; socket?: string }, e: Env = currentEnv()): string | undefined {
  const path = configPath(e, opts.config);
  let fromFile: unknown;
  if (existsSync(path)) {
    try {
      fromFile = (parse(readFileSync(path, "utf8")) as Record<string, unknown>).socket;
    } catch {
      return undefined;
    }
    if (fromFile !== undefined && (typeof fromFile !== "string" || fromFile === "")) return undefined;
  } else if (opts.config || e.env.BANGER_CONFIG) {
    return undefined;
  }
  const socket = opts.socket || e.env.BANGER_SOCKET || (fromFile as string | undefined) || defaultSocket(e);
  return resolve(socket.startsWith("~/") ? join(e.home, socket.slice(2)) : socket);
}
