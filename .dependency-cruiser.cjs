/**
 * The layering docs/architecture.md promises, checked by `make lint`:
 * domain is pure, ports name only domain types, the app reaches the host only
 * through ports, adapters never call use cases, and nothing imports in a circle.
 */
const NODE_IO = "^(node:)?(fs|fs/promises|child_process|net|http|https|dgram|os|worker_threads)$";
module.exports = {
  forbidden: [
    { name: "no-circular", severity: "error", from: { path: "^src" }, to: { circular: true } },
    {
      name: "domain-is-pure",
      severity: "error",
      comment: "src/domain has no I/O and depends on nothing else",
      from: { path: "^src/domain" },
      to: { pathNot: "^src/domain", dependencyTypesNot: ["type-only"] },
    },
    { name: "domain-no-io", severity: "error", from: { path: "^src/domain" }, to: { dependencyTypes: ["core"], path: NODE_IO } },
    { name: "ports-name-domain-only", severity: "error", from: { path: "^src/ports" }, to: { pathNot: "^src/(ports|domain)" } },
    {
      name: "app-through-ports",
      severity: "error",
      comment: "use cases reach the host only through src/ports",
      from: { path: "^src/app" },
      to: { path: "^src/(adapters|daemon|api|cli|config|web)" },
    },
    {
      name: "app-no-io",
      severity: "error",
      comment: "file and process I/O belongs in an adapter behind a port",
      from: { path: "^src/app" },
      to: { dependencyTypes: ["core"], path: NODE_IO },
    },
    { name: "adapters-not-app", severity: "error", from: { path: "^src/adapters" }, to: { path: "^src/(app|api|cli|daemon)" } },
    {
      name: "cli-not-daemon",
      severity: "error",
      comment: "the CLI talks to bangerd over its socket; only `banger daemon start` hosts or probes the daemon itself",
      from: { path: "^src/cli", pathNot: "^src/cli/commands/daemon\\.ts$" },
      to: { path: "^src/(daemon|api)" },
    },
    {
      name: "ui-is-browser-code",
      severity: "error",
      comment: "the web UI runs in the browser: it reaches bangerd only through /v1 and shares only pure domain code",
      from: { path: "^src/ui" },
      to: { pathNot: "^src/(ui|domain)" },
    },
    {
      name: "nothing-imports-ui",
      severity: "error",
      comment: "src/ui is bundled for the browser by scripts/bundle/ui.mjs; the daemon serves the built files",
      from: { pathNot: "^src/ui" },
      to: { path: "^src/ui" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"], extensions: [".ts", ".js"] },
  },
};
