import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".map": "application/json",
};

export interface Asset {
  body: Buffer;
  type: string;
}

/**
 * The UI `make build` wrote to build/web: index.html plus content-hashed files under assets/.
 * Read once at start (a few tens of KiB) so a request never touches the disk.
 */
export class Assets {
  readonly index: string;
  private readonly files = new Map<string, Asset>();

  constructor(readonly dir: string) {
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { files: string[] };
    this.index = readFileSync(join(dir, "index.html"), "utf8");
    for (const f of manifest.files) {
      const ext = f.slice(f.lastIndexOf("."));
      this.files.set(f, { body: readFileSync(join(dir, "assets", f)), type: TYPES[ext] ?? "application/octet-stream" });
    }
  }

  get(name: string): Asset | undefined {
    return this.files.get(name);
  }
}

/** build/web of the install this code runs from: the package root is the nearest directory with package.json. */
export function assetsDir(): string {
  if (process.env.BANGER_WEB_ASSETS) return resolve(process.env.BANGER_WEB_ASSETS);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json"))) return join(dir, "build/web");
    dir = dirname(dir);
  }
  return resolve("build/web");
}
