import { createHash } from "node:crypto";
import type { BuildInfo, BuildStep } from "../domain/build.js";

export const sha256Hex = (s: string | Buffer): string => createHash("sha256").update(s).digest("hex");

/** The steps as `image show` lists them, packages first as they run first; each with its own digest. */
export function stepDigests(packages: string[], steps: BuildStep[]): BuildInfo["steps"] {
  const out: BuildInfo["steps"] = [];
  if (packages.length > 0) {
    const text = packages.join(" ");
    out.push({ kind: "packages", label: text, sha256: sha256Hex(`packages\0${text}`) });
  }
  for (const s of steps) {
    out.push(s.kind === "script" ? { kind: "script", label: s.name, sha256: s.sha256 } : { kind: "run", label: s.command, sha256: sha256Hex(s.command) });
  }
  return out;
}

export function buildDigest(steps: BuildInfo["steps"]): string {
  return sha256Hex(steps.map((s) => `${s.kind}:${s.sha256}`).join("\n"));
}
