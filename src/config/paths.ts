import { homedir } from "node:os";
import { join, resolve, isAbsolute } from "node:path";

// Where things live by default. Kept apart from load.ts (and its zod schema) so the CLI can find
// the daemon's socket without loading the validator.

export interface Env {
  env: NodeJS.ProcessEnv;
  uid: number;
  home: string;
}

export function currentEnv(): Env {
  return { env: process.env, uid: process.getuid?.() ?? 1000, home: homedir() };
}

function xdg(e: Env, name: string, fallback: string): string {
  const v = e.env[name];
  return v && isAbsolute(v) ? v : join(e.home, fallback);
}

export function configPath(e: Env, flag?: string): string {
  if (flag) return resolve(flag);
  if (e.env.BANGER_CONFIG) return resolve(e.env.BANGER_CONFIG);
  if (e.uid === 0 && !e.env.XDG_CONFIG_HOME) return "/etc/banger/config.toml";
  return join(xdg(e, "XDG_CONFIG_HOME", ".config"), "banger", "config.toml");
}

export function defaultStateDir(e: Env): string {
  if (e.uid === 0 && !e.env.XDG_STATE_HOME) return "/var/lib/banger";
  return join(xdg(e, "XDG_STATE_HOME", ".local/state"), "banger");
}

export function defaultSocket(e: Env): string {
  if (e.uid === 0 && !e.env.XDG_RUNTIME_DIR) return "/run/banger/bangerd.sock";
  const runtime = e.env.XDG_RUNTIME_DIR && isAbsolute(e.env.XDG_RUNTIME_DIR) ? e.env.XDG_RUNTIME_DIR : `/tmp/banger-${e.uid}`;
  return join(runtime, "banger", "bangerd.sock");
}

export function defaultSshKeyPath(e: Env): string {
  return join(xdg(e, "XDG_DATA_HOME", ".local/share"), "banger", "ssh", "id_ed25519");
}
