import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Absolute path of an executable: `name` itself when it contains a slash, else the first match on PATH (plus sbin dirs, which non-root PATHs often lack). */
export function which(name: string, path = process.env.PATH ?? ""): string | undefined {
  const candidates = name.includes("/")
    ? [name]
    : [...path.split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin"].filter(Boolean).map((dir) => join(dir, name));
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}
