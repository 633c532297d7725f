// make build: bundles the CLI and bangerd into build/bundle/ with esbuild. Fewer, bigger files
// cut the CLI's start-up and bangerd's resident memory (docs/architecture.md, "CLI and daemon
// footprint"). The layout:
//   banger.cjs      the CLI's entry, a few lines written here: `banger __complete` goes to
//                   banger-complete.cjs, everything else to banger-main.cjs
//   banger-main.cjs the CLI's hot path, one CommonJS file: Node's CommonJS loader starts about
//                   5 ms faster than its ESM loader, and each extra module file costs more
//   lazy-*.js       what only some commands need (the config validator, `daemon start
//                   --foreground`, the offline doctor): ESM with shared chunks, imported on use
//   errors.cjs      BangerError, shared by both, so `instanceof` holds across them
//   banger-complete.cjs  `banger __complete vms|images` for shell completion: names from the
//                   daemon without reading the command tree (a shell's Tab would pay ~20 ms to parse it)
//   banger-vsock.cjs  the ssh ProxyCommand companion: one small CommonJS file of its own
//   bangerd.js      the daemon, one ESM file (bangerd-*.js: the web UI's server, imported only
//                   when the UI is on)
//   banger-k8s.js   the scale-out controller (docs/scale-out.md), one ESM file with the Kubernetes client
// All sit in one directory: src/version.ts finds package.json two levels up from its file.
// better-sqlite3 stays external: it loads a native addon from its own directory.
import { rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "build/bundle");
const src = join(root, "src");

/**
 * zod's namespace re-exports every locale (`z.locales`, ~300 KB of source over 40 languages) while
 * its messages come from English alone, which zod imports directly. Nothing in banger reads
 * `z.locales`; bundled, the rest only cost bangerd's heap the source text and its compilation.
 */
const zodEnglishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer) ? { path: join(root, "scripts/bundle/zod-locales.mjs") } : undefined,
    );
  },
};

/** One BangerError class for the CLI and its lazy parts. */
const sharedErrors = {
  name: "shared-errors",
  setup(b) {
    b.onResolve({ filter: /\/domain\/errors\.js$/ }, () => ({ path: "./errors.cjs", external: true }));
  },
};

const lazyName = (file) =>
  `lazy-${relative(src, file)
    .replace(/\.[jt]s$/, "")
    .replaceAll("/", "-")}`;
const lazyEntries = {};

/** A dynamic import() of our own code in the CLI becomes an import of the lazy build's entry. */
const lazyImports = {
  name: "lazy-imports",
  setup(b) {
    b.onResolve({ filter: /^\./ }, (args) => {
      if (args.kind !== "dynamic-import") return undefined;
      const file = join(args.resolveDir, args.path).replace(/\.js$/, ".ts");
      lazyEntries[lazyName(file)] = file;
      return { path: `./${lazyName(file)}.js`, external: true };
    });
  },
};

// Chunk names carry hashes: start empty so no stale chunk is shipped.
rmSync(out, { recursive: true, force: true });

const common = {
  absWorkingDir: root,
  outdir: out,
  bundle: true,
  platform: "node",
  target: "node20",
  external: ["better-sqlite3"],
  define: { BANGER_BUNDLED: "true" },
  // Whitespace and syntax only: V8 keeps every loaded script's source in memory, and readable
  // names keep stack traces useful. The source map is there for debugging, never loaded.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: "linked",
  legalComments: "linked",
  metafile: true,
  logLevel: "warning",
};
// Bundled CommonJS packages (commander, pino) call require() for Node built-ins.
const esm = {
  ...common,
  format: "esm",
  banner: { js: 'import { createRequire as __bangerRequire } from "node:module"; const require = __bangerRequire(import.meta.url);' },
};
const cjs = {
  ...common,
  format: "cjs",
  outExtension: { ".js": ".cjs" },
  define: { ...common.define, "import.meta.url": "__bangerUrl" },
  banner: { js: 'const __bangerUrl = require("node:url").pathToFileURL(__filename).href;' },
};

const errors = await build({ ...cjs, entryPoints: { errors: "src/domain/errors.ts" } });
// The CLI first: it names the lazy entries.
const cli = await build({ ...cjs, entryPoints: { "banger-main": "src/cli/main.ts" }, plugins: [sharedErrors, lazyImports] });
// The entry decides before Node reads either bundle: V8 parses a whole CommonJS file before running
// its first line, and banger-main.cjs (~150 KB) costs a Tab about 20 ms that way (make bench-cli).
writeFileSync(
  join(out, "banger.cjs"),
  '#!/usr/bin/env node\n"use strict";\nrequire(process.argv[2] === "__complete" ? "./banger-complete.cjs" : "./banger-main.cjs");\n',
  { mode: 0o755 },
);
const complete = await build({ ...cjs, entryPoints: { "banger-complete": "src/cli/completion/main.ts" } });
const vsock = await build({ ...cjs, entryPoints: { "banger-vsock": "src/cli/vsock.ts" } });
const [lazy, daemon, k8s] = await Promise.all([
  build({ ...esm, entryPoints: lazyEntries, splitting: true, chunkNames: "lazy-[hash]", plugins: [sharedErrors, zodEnglishOnly] }),
  // The web UI's server is a chunk of its own, loaded only when web.enabled (src/daemon/web.ts).
  build({ ...esm, entryPoints: { bangerd: "src/daemon/main.ts" }, splitting: true, chunkNames: "bangerd-[hash]", plugins: [zodEnglishOnly] }),
  build({ ...esm, entryPoints: { "banger-k8s": "src/k8s/main.ts" } }),
]);
// What went into each output, by input file (kept out of the package).
writeFileSync(
  join(root, "build/bundle-meta.json"),
  JSON.stringify({
    errors: errors.metafile,
    cli: cli.metafile,
    complete: complete.metafile,
    vsock: vsock.metafile,
    lazy: lazy.metafile,
    daemon: daemon.metafile,
    k8s: k8s.metafile,
  }),
);
