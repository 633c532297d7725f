import { readFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { type z } from "zod";
import { BangerError } from "../domain/errors.js";
import { configSchema, STATIC_DEFAULTS, type Config } from "./schema.js";
import { configPath, currentEnv, defaultSocket, defaultSshKeyPath, defaultStateDir, type Env } from "./paths.js";

export { configPath, currentEnv, defaultSocket, defaultSshKeyPath, defaultStateDir, type Env };

export type Source = "default" | "env" | "flag" | `file:${string}`;

export interface LoadedConfig {
  config: Readonly<Config>;
  /** Where each key's value came from; dotted keys for nested tables. */
  sources: Record<string, Source>;
  /** The config file consulted (it may not exist). */
  path: string;
  fileExists: boolean;
  /** Derived paths, resolved once. */
  paths: Paths;
}

export interface Paths {
  stateDir: string;
  socket: string;
  imagesDir: string;
  vmsDir: string;
  /** Firecracker jails: `<jailDir>/firecracker/<vm id>/root` (jailer --chroot-base-dir). */
  jailDir: string;
  dbFile: string;
  logFile: string;
  lockFile: string;
  /** Auto-managed default key, used when ssh_key is unset. */
  defaultSshKey: string;
}

function describeIssue(issue: z.core.$ZodIssue, file: string): string {
  const key = issue.path.join(".") || "(top level)";
  if (issue.code === "unrecognized_keys") {
    const keys = (issue as { keys: string[] }).keys.map((k) => [...issue.path, k].join("."));
    return `unknown key ${keys.map((k) => `'${k}'`).join(", ")} in ${file}; allowed keys are listed in docs/config.md (or run \`banger config show\`)`;
  }
  return `bad value for '${key}' in ${file}: ${issue.message}`;
}

/** Config keys that are TOML tables, merged key by key over their defaults. */
const TABLES = new Set(["web", "metrics", "nat", "images"]);

export interface LoadOptions {
  configFlag?: string;
  socketFlag?: string;
  env?: Env;
}

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const e = opts.env ?? currentEnv();
  const path = configPath(e, opts.configFlag);
  const fileExists = existsSync(path);
  let fileValues: Record<string, unknown> = {};
  if (fileExists) {
    try {
      fileValues = parseToml(readFileSync(path, "utf8")) as Record<string, unknown>;
    } catch (err) {
      throw new BangerError("INVALID_CONFIG", `cannot parse ${path}: ${(err as Error).message}`, {
        hint: "fix the TOML syntax; docs/config.md lists every key",
      });
    }
  } else if (opts.configFlag || e.env.BANGER_CONFIG) {
    throw new BangerError("INVALID_CONFIG", `config file ${path} does not exist`, {
      hint: "create it, or drop --config / BANGER_CONFIG to use the default location",
    });
  }

  const sources: Record<string, Source> = {};
  const merged: Record<string, unknown> = {};
  const defaults: Record<string, unknown> = {
    ...STATIC_DEFAULTS,
    state_dir: defaultStateDir(e),
    socket: defaultSocket(e),
  };
  for (const [k, v] of Object.entries(defaults)) {
    merged[k] = typeof v === "object" && v ? { ...v } : v;
    sources[k] = "default";
  }
  for (const k of Object.keys(STATIC_DEFAULTS.web)) sources[`web.${k}`] = "default";
  for (const k of Object.keys(STATIC_DEFAULTS.metrics)) sources[`metrics.${k}`] = "default";
  sources["nat.allow"] = "default";
  for (const k of Object.keys(STATIC_DEFAULTS.images)) sources[`images.${k}`] = "default";
  for (const [k, v] of Object.entries(fileValues)) {
    if (TABLES.has(k) && typeof v === "object" && v && !Array.isArray(v)) {
      merged[k] = { ...(merged[k] as object), ...(v as object) };
      for (const sub of Object.keys(v)) sources[`${k}.${sub}`] = `file:${path}`;
    } else {
      merged[k] = v;
      sources[k] = `file:${path}`;
    }
  }
  if (opts.socketFlag) {
    merged.socket = opts.socketFlag;
    sources.socket = "flag";
  } else if (e.env.BANGER_SOCKET) {
    merged.socket = e.env.BANGER_SOCKET;
    sources.socket = "env";
  }

  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => describeIssue(i, path));
    throw new BangerError("INVALID_CONFIG", lines.join("\n"), { hint: "see docs/config.md for every key, its type and default" });
  }
  const config = parsed.data;
  for (const key of ["state_dir", "socket", "ssh_key", "firecracker_bin", "jailer_bin"] as const) {
    const v = config[key];
    if (v && v.startsWith("~/")) (config as Record<string, unknown>)[key] = join(e.home, v.slice(2));
  }
  return { config: Object.freeze(config), sources, path, fileExists, paths: derivePaths(config, e) };
}

export function derivePaths(config: Config, e: Env): Paths {
  const stateDir = resolve(config.state_dir);
  return {
    stateDir,
    socket: resolve(config.socket),
    imagesDir: join(stateDir, "images"),
    vmsDir: join(stateDir, "vms"),
    jailDir: join(stateDir, "jail"),
    dbFile: join(stateDir, "banger.db"),
    logFile: join(stateDir, "bangerd.log"),
    lockFile: join(stateDir, "bangerd.lock"),
    defaultSshKey: defaultSshKeyPath(e),
  };
}
