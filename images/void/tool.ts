/**
 * images/void/build.sh's TypeScript half (vite-node):
 *   tool.ts env                       shell assignments from the pin
 *   tool.ts manifest JSON_INPUT OUT   manifest.json from a VoidManifestInput file
 */
import { readFileSync, writeFileSync } from "node:fs";
import { shq } from "../alpine/env.js";
import { VOID, VOID_REPOSITORY, voidManifest, type VoidManifestInput } from "./pin.js";

function main([cmd, ...rest]: string[]): void {
  if (cmd === "env") {
    const vars = {
      VOID_ROOTFS_URL: VOID.rootfs.url,
      VOID_ROOTFS_SHA256: VOID.rootfs.sha256,
      VOID_ROOTFS_FILE: VOID.rootfs.url.split("/").pop()!,
      VOID_REPOSITORY,
      VOID_PACKAGES: VOID.packages.join(" "),
      OPENCODE_NPM: VOID.opencode.npm,
      OPENCODE_VERSION: VOID.opencode.version,
    };
    process.stdout.write(
      Object.entries(vars)
        .map(([k, v]) => `${k}=${shq(v)}`)
        .join("\n") + "\n",
    );
    return;
  }
  if (cmd === "manifest" && rest.length === 2) {
    const input = JSON.parse(readFileSync(rest[0], "utf8")) as VoidManifestInput;
    writeFileSync(rest[1], JSON.stringify(voidManifest(VOID, input), null, 2) + "\n");
    return;
  }
  throw new Error("usage: tool.ts env | tool.ts manifest INPUT.json OUT.json");
}

try {
  main(process.argv.slice(2).filter((a) => a !== "--"));
} catch (e) {
  process.stderr.write(`error: ${(e as Error).message}\n`);
  process.exit(1);
}
