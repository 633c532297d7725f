import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { shellEnv } from "../../images/alpine/env.js";
import { ALPINE, DEFAULT_MIRROR, apkWorld, minirootfsUrl, pinFor, repositoryUrls } from "../../images/alpine/pin.js";
import { resolveSource } from "../../images/alpine/source.js";

const tmp = mkdtempSync(join(tmpdir(), "banger-alpine-pin-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("the pinned Alpine manifest", () => {
  it("pins a release with a sha256 and exact package versions", () => {
    expect(ALPINE.branch).toBe(`v${ALPINE.release.version.split(".").slice(0, 2).join(".")}`);
    expect(ALPINE.release.sha256).toMatch(/^[0-9a-f]{64}$/);
    for (const p of [...ALPINE.packages, ...ALPINE.kernelPackages]) expect(p.version, p.name).toMatch(/^[0-9][^\s=<>~]*-r\d+$/);
    const names = ALPINE.packages.map((p) => p.name);
    for (const n of ["openrc", "openssh-server", "busybox-openrc", "ca-certificates", "e2fsprogs", "libgcc", "libstdc++"]) expect(names).toContain(n);
    expect(ALPINE.kernelPackages.map((p) => p.name)).toEqual(["linux-virt", "mkinitfs"]);
    expect(ALPINE.opencode.npm).toBe("opencode-linux-x64-musl");
  });

  it("builds the CDN's URLs and apk world entries", () => {
    expect(minirootfsUrl(ALPINE)).toBe("https://dl-cdn.alpinelinux.org/alpine/v3.19/releases/x86_64/alpine-minirootfs-3.19.4-x86_64.tar.gz");
    expect(repositoryUrls(ALPINE)).toEqual(["https://dl-cdn.alpinelinux.org/alpine/v3.19/main", "https://dl-cdn.alpinelinux.org/alpine/v3.19/community"]);
    expect(repositoryUrls(ALPINE, "http://mirror.local/alpine///")[0]).toBe("http://mirror.local/alpine/v3.19/main");
    expect(apkWorld([{ name: "libstdc++", version: "13.2.1_git20231014-r0" }])).toEqual(["libstdc++=13.2.1_git20231014-r0"]);
  });

  it("refuses an unknown branch by name", () => {
    expect(pinFor(undefined)).toBe(ALPINE);
    expect(() => pinFor("v3.99")).toThrow(/unknown Alpine branch v3\.99: this build pins v3\.19/);
  });
});

describe("package source (--mirror / BANGER_ALPINE_MIRROR)", () => {
  it("defaults to the CDN and accepts any http(s) mirror", () => {
    expect(resolveSource(undefined, ALPINE)).toMatchObject({ kind: "http", mirror: DEFAULT_MIRROR });
    const s = resolveSource("https://mirror.example/alpine/", ALPINE);
    expect(s).toMatchObject({ kind: "http", minirootfs: "https://mirror.example/alpine/v3.19/releases/x86_64/alpine-minirootfs-3.19.4-x86_64.tar.gz" });
  });

  it("finds every indexed repository of the branch in a local mirror copy, and its minirootfs", () => {
    const m = join(tmp, "mirror");
    for (const r of ["main", "extra", "noindex"]) mkdirSync(join(m, "v3.19", r, "x86_64"), { recursive: true });
    writeFileSync(join(m, "v3.19/main/x86_64/APKINDEX.tar.gz"), "x");
    writeFileSync(join(m, "v3.19/extra/x86_64/APKINDEX.tar.gz"), "x");
    mkdirSync(join(m, "v3.19/releases/x86_64"), { recursive: true });
    writeFileSync(join(m, "v3.19/releases/x86_64/alpine-minirootfs-3.19.4-x86_64.tar.gz"), "x");
    const s = resolveSource(m, ALPINE);
    expect(s).toEqual({
      kind: "index-dir",
      mirror: m,
      repositories: [join(m, "v3.19/extra"), join(m, "v3.19/main")],
      minirootfs: join(m, "v3.19/releases/x86_64/alpine-minirootfs-3.19.4-x86_64.tar.gz"),
    });
  });

  it("takes a single repository directory and a flat directory of .apk files", () => {
    const repo = join(tmp, "repo");
    mkdirSync(join(repo, "x86_64"), { recursive: true });
    writeFileSync(join(repo, "x86_64/APKINDEX.tar.gz"), "x");
    expect(resolveSource(repo, ALPINE)).toMatchObject({ kind: "index-dir", repositories: [repo] });
    const flat = join(tmp, "flat");
    mkdirSync(flat);
    for (const p of ALPINE.packages) writeFileSync(join(flat, `${p.name}-${p.version}.apk`), "x");
    const s = resolveSource(flat, ALPINE);
    expect(s.kind).toBe("apk-dir");
    expect(shellEnv(ALPINE, flat)).toMatch(/^SOURCE_KIND='apk-dir'$/m);
  });

  it("names what a flat directory lacks", () => {
    const flat = join(tmp, "partial");
    mkdirSync(flat);
    writeFileSync(join(flat, "openrc-0.52.1-r2.apk"), "x");
    expect(() => shellEnv(ALPINE, flat)).toThrow(/must hold every pinned package; missing busybox-openrc-1\.36\.1-r15\.apk/);
  });

  it("bad mirror paths are clear errors", () => {
    expect(() => resolveSource(join(tmp, "nope"), ALPINE)).toThrow(/mirror .*nope: no such directory/);
    mkdirSync(join(tmp, "empty"));
    expect(() => resolveSource(join(tmp, "empty"), ALPINE)).toThrow(
      /no v3\.19\/<repo>\/x86_64\/APKINDEX\.tar\.gz, no x86_64\/APKINDEX\.tar\.gz and no \.apk files/,
    );
    expect(() => resolveSource("ftp://mirror/alpine", ALPINE)).toThrow(/only http\(s\) URLs or a local directory/);
  });

  it("shell assignments survive quoting", () => {
    const env = shellEnv(ALPINE, "https://m.example/it's");
    expect(env).toContain(`SOURCE_MIRROR='https://m.example/it'\\''s'`);
    expect(env).toMatch(/^APK_WORLD='openrc=0\.52\.1-r2 /m);
  });
});
