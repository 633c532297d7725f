import { BangerError } from "./errors.js";

/** One provisioning step as the daemon receives it: a script's content (never a client path) or a command line. */
export type BuildStep = { kind: "script"; name: string; content: string; sha256: string } | { kind: "run"; command: string };

/** What an image built by `banger image build` records about where it came from. */
export interface BuildInfo {
  parent: string;
  parentId: string;
  /** sha256 over every step in order (packages included): the one value `image show` prints. */
  digest: string;
  steps: { kind: "packages" | "script" | "run"; label: string; sha256: string }[];
  rootfsBytes?: number;
  nat: boolean;
  /** The build's stages with their times, as create's stages are listed by `vm show`. */
  stages: { stage: string; ms: number; detail?: string }[];
}

export type PackageManager = "apt" | "apk" | "xbps";

/**
 * The package managers' own command lines, one per OS family: the manifest `--packages` goes
 * through. Names are validated before they get here (validatePackages), so joining is safe.
 */
export const PACKAGE_COMMANDS: Record<PackageManager, (pkgs: string[]) => string> = {
  apt: (p) => `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${p.join(" ")}`,
  apk: (p) => `apk add --no-cache ${p.join(" ")}`,
  xbps: (p) => `xbps-install -Sy ${p.join(" ")}`,
};

/** The image's `os` label → its package manager; undefined means "ask the guest which one it has". */
export function packageManagerFor(os: string): PackageManager | undefined {
  const o = os.toLowerCase();
  if (/^(debian|ubuntu)/.test(o)) return "apt";
  if (o.startsWith("alpine")) return "apk";
  if (o.startsWith("void")) return "xbps";
  return undefined;
}

/** Run in the guest when the image's os label does not say: prints apt, apk or xbps. */
export const DETECT_PACKAGE_MANAGER =
  "if command -v apt-get >/dev/null; then echo apt; elif command -v apk >/dev/null; then echo apk; elif command -v xbps-install >/dev/null; then echo xbps; fi";

// Package names (and apt's name=version, name:arch, apk's name=version / name~version) use
// these characters only; anything else could be read by the guest's shell.
const PACKAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9+._:=~-]{0,127}$/;

export function validatePackages(list: string[]): string[] {
  const pkgs = list.map((p) => p.trim()).filter((p) => p.length > 0);
  const bad = pkgs.filter((p) => !PACKAGE_NAME.test(p));
  if (bad.length > 0) {
    throw new BangerError(
      "BAD_REQUEST",
      `--packages: ${bad.map((b) => JSON.stringify(b)).join(", ")} ${bad.length > 1 ? "are not package names" : "is not a package name"}`,
      {
        hint: "package names are letters, digits and + . _ - (apt/apk also = ~ : for versions); no spaces or shell characters. Use --run for anything else",
      },
    );
  }
  return pkgs;
}

const UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "2G", "1536M", "2GiB", "4294967296" → bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const bytes = m ? Number(m[1]) * UNITS[m[2].toUpperCase()] : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new BangerError("BAD_REQUEST", `size ${JSON.stringify(text)} is not a size`, {
      hint: "write it as a number with an optional K, M, G or T suffix, e.g. 2G",
    });
  }
  return bytes;
}

/** "30m", "90s", "2h" or plain seconds → ms: `image build --timeout` and the web form's Timeout. */
export function parseDurationMs(text: string): number {
  const m = /^(\d+)\s*(s|m|h)?$/.exec(text.trim());
  if (!m || Number(m[1]) === 0) {
    throw new BangerError("BAD_REQUEST", `timeout ${JSON.stringify(text)} is not a duration`, { hint: "write it as e.g. 30m, 90s or 2h" });
  }
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[(m[2] ?? "s") as "s" | "m" | "h"];
}

/** "built from debian-12-… by script sha256:…", the line `image show` prints. */
export function describeBuild(b: BuildInfo): string {
  return `built from ${b.parent} by script sha256:${b.digest}`;
}

/** A step's stage name in the plan and in the stream: script:<file name> or run:<n>. */
export function stepStage(s: BuildStep, index: number): string {
  return s.kind === "script" ? `script:${s.name}` : `run:${index + 1}`;
}

/** One line of the build's NDJSON stream (docs/api.md, "POST /v1/images/build"). */
export type BuildEvent =
  | { type: "builder"; vm: string }
  | { type: "stage"; stage: string; status: "start" }
  | { type: "stage"; stage: string; status: "done"; ms: number; detail?: string }
  | { type: "output"; stage: string; stream: "stdout" | "stderr"; line: string }
  | { type: "result"; image: unknown }
  | { type: "error"; error: { code: string; message: string; hint?: string; stage?: string } };
