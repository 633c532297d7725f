/**
 * The TypeScript half of images/alpine/build.sh (run with vite-node):
 *
 *   tool.ts env [--mirror URL|DIR] [--branch vX.Y]   shell assignments for the build
 *   tool.ts fetch SOURCE DEST SHA256                   verified, resumable download into a cache
 *
 * Errors go to stderr as one line starting with "error:" and exit 1.
 */
import { parseArgs } from "node:util";
import { fetchVerified } from "../lib/fetch.js";
import { shellEnv } from "./env.js";
import { pinFor } from "./pin.js";

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === "env") {
    const { values } = parseArgs({ args: rest, options: { mirror: { type: "string" }, branch: { type: "string" } } });
    process.stdout.write(shellEnv(pinFor(values.branch), values.mirror ?? process.env.BANGER_ALPINE_MIRROR));
    return;
  }
  if (cmd === "fetch") {
    const [source, dest, sha256] = rest;
    if (!source || !dest || !sha256) throw new Error("usage: tool.ts fetch SOURCE DEST SHA256");
    const r = await fetchVerified({ source, dest, sha256 });
    process.stderr.write(`           ${dest.split("/").pop()}: ${r.cached ? "cached, sha256 ok" : `fetched ${r.bytes} bytes, sha256 ok`}\n`);
    return;
  }
  throw new Error(`usage: tool.ts env|fetch ... (got ${cmd ?? "nothing"})`);
}

main(process.argv.slice(2).filter((a) => a !== "--")).then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(1);
  },
);
