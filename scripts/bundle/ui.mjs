// make build: the web UI into build/web/. Plain TypeScript and DOM calls bundled by esbuild,
// which already builds the CLI and daemon: no framework, no second toolchain, ~30 KiB of script.
// File names carry a content hash so bangerd can serve them as immutable; index.html and
// manifest.json name them. No inline script or style: the CSP forbids both.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "build/web");
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });

const res = await build({
  absWorkingDir: root,
  entryPoints: { app: "src/ui/main.ts", style: "src/ui/style.css" },
  outdir: join(out, "assets"),
  entryNames: "[name]-[hash]",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome110", "firefox115", "safari16"],
  minify: true,
  sourcemap: false,
  metafile: true,
  logLevel: "warning",
});
const files = Object.keys(res.metafile.outputs).map((f) => basename(f));
const js = files.find((f) => f.startsWith("app-") && f.endsWith(".js"));
const css = files.find((f) => f.startsWith("style-") && f.endsWith(".css"));
const icon = readFileSync(join(root, "src/ui/icon.svg"));
const iconName = `icon-${(await import("node:crypto")).createHash("sha256").update(icon).digest("hex").slice(0, 8)}.svg`;
writeFileSync(join(out, "assets", iconName), icon);
files.push(iconName);
writeFileSync(
  join(out, "index.html"),
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>banger</title>
<link rel="icon" href="/assets/${iconName}" type="image/svg+xml">
<link rel="stylesheet" href="/assets/${css}">
<script type="module" src="/assets/${js}"></script>
</head>
<body><noscript>The banger UI needs JavaScript; the CLI (banger) does everything it does.</noscript></body>
</html>
`,
);
writeFileSync(join(out, "manifest.json"), JSON.stringify({ files }, null, 2) + "\n");
