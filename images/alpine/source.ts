/**
 * Where packages and the minirootfs come from: `--mirror URL|DIR` or
 * BANGER_ALPINE_MIRROR, defaulting to Alpine's CDN.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { DEFAULT_MIRROR, minirootfsName, minirootfsUrl, repositoryUrls, type AlpinePin } from "./pin.js";

export type PackageSource =
  /** apk fetches from http(s) repositories and checks their signed indexes. */
  | { kind: "http"; mirror: string; repositories: string[]; minirootfs: string }
  /** Local repositories (each <repo>/<arch>/APKINDEX.tar.gz): same signature checks, no network. */
  | { kind: "index-dir"; mirror: string; repositories: string[]; minirootfs?: string }
  /** A flat directory of .apk files: each file's own signature is checked, but there is no index. */
  | { kind: "apk-dir"; mirror: string; files: string[]; minirootfs?: string };

const hasIndex = (repo: string, arch: string) => existsSync(join(repo, arch, "APKINDEX.tar.gz"));

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A local minirootfs in the mirror's own release layout, or beside the packages. */
function localMinirootfs(dir: string, pin: AlpinePin): string | undefined {
  const candidates = [
    join(dir, pin.branch, "releases", pin.arch, minirootfsName(pin)),
    join(dir, "releases", pin.arch, minirootfsName(pin)),
    join(dir, minirootfsName(pin)),
  ];
  return candidates.find((c) => existsSync(c));
}

export function resolveSource(arg: string | undefined, pin: AlpinePin): PackageSource {
  const mirror = (arg ?? "").trim() || DEFAULT_MIRROR;
  if (/^https?:\/\//i.test(mirror)) {
    return { kind: "http", mirror, repositories: repositoryUrls(pin, mirror), minirootfs: minirootfsUrl(pin, mirror) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(mirror)) {
    throw new Error(`mirror ${mirror}: only http(s) URLs or a local directory are supported`);
  }
  const dir = resolve(mirror);
  if (!isDir(dir)) {
    throw new Error(
      `mirror ${mirror}: no such directory (expected an http(s) URL, a local copy of the mirror with ${pin.branch}/<repo>/${pin.arch}/APKINDEX.tar.gz, or a directory of .apk files)`,
    );
  }
  const minirootfs = localMinirootfs(dir, pin);
  // Every repository of the branch that has an index is used, not just main/community,
  // so a local copy can add one (say, packages taken from a release ISO's apks/).
  const branchDir = join(dir, pin.branch);
  const repos = isDir(branchDir)
    ? readdirSync(branchDir)
        .sort()
        .map((r) => join(branchDir, r))
        .filter((r) => hasIndex(r, pin.arch))
    : [];
  if (repos.length > 0) return { kind: "index-dir", mirror: dir, repositories: repos, minirootfs };
  if (hasIndex(dir, pin.arch)) return { kind: "index-dir", mirror: dir, repositories: [dir], minirootfs };
  const apkDirs = [dir, join(dir, pin.arch)].filter(isDir);
  const files = apkDirs.flatMap((d) =>
    readdirSync(d)
      .filter((f) => f.endsWith(".apk"))
      .sort()
      .map((f) => join(d, f)),
  );
  if (files.length > 0) return { kind: "apk-dir", mirror: dir, files, minirootfs };
  throw new Error(`mirror ${mirror}: no ${pin.branch}/<repo>/${pin.arch}/APKINDEX.tar.gz, no ${pin.arch}/APKINDEX.tar.gz and no .apk files in ${dir}`);
}

/** The package file for name=version in a flat .apk directory, or undefined. */
export function apkFileFor(files: string[], name: string, version: string): string | undefined {
  return files.find((f) => f.split("/").pop() === `${name}-${version}.apk`);
}
