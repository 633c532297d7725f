// make build: bundles the CLI and bangerd into build/bundle/ with esbuild (ESM, code splitting).
// One file per program instead of hundreds of modules cuts the CLI's start and bangerd's
// resident memory (docs/architecture.md, "CLI and daemon footprint"). better-sqlite3 stays
// external: it loads a native addon from its own directory.
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "build/bundle");

/** "undici" itself (not its subpaths, which the shim imports) resolves to the shim. */
const undiciClientOnly = {
  name: "undici-client-only",
  setup(b) {
    b.onResolve({ filter: /^undici$/ }, () => ({ path: join(root, "scripts/bundle/undici-client.mjs") }));
  },
};

// Chunk names carry hashes: start empty so no stale chunk is shipped.
rmSync(out, { recursive: true, force: true });

const common = {
  absWorkingDir: root,
  outdir: out,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  external: ["better-sqlite3"],
  plugins: [undiciClientOnly],
  define: { BANGER_BUNDLED: "true" },
  // Bundled CommonJS packages (commander, pino, undici) call require() for Node built-ins.
  banner: { js: 'import { createRequire as __bangerRequire } from "node:module"; const require = __bangerRequire(import.meta.url);' },
  // Whitespace and syntax only: V8 keeps every loaded script's source in memory, and readable
  // names keep stack traces useful. The source map is there for debugging, never loaded.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: "linked",
  legalComments: "linked",
  metafile: true,
  logLevel: "warning",
};
const [cli, daemon] = await Promise.all([
  // The CLI's lazy parts (the config validator, `daemon start --foreground`, the offline doctor)
  // become chunks it loads only when a command needs them. Chunks sit beside the entries:
  // src/version.ts finds package.json two levels up from the file it is in.
  build({ ...common, entryPoints: { banger: "src/cli/main.ts" }, splitting: true, chunkNames: "banger-[hash]" }),
  // bangerd loads all of itself at start anyway: one file.
  build({ ...common, entryPoints: { bangerd: "src/daemon/main.ts" } }),
]);
// What went into each output, by input file (kept out of the package).
writeFileSync(join(root, "build/bundle-meta.json"), JSON.stringify({ cli: cli.metafile, daemon: daemon.metafile }));
