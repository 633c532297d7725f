/** Shell assignments that carry the pinned manifest and the resolved package source into build.sh. */
import { apkFileFor, resolveSource } from "./source.js";
import { apkWorld, minirootfsName, opencodeTarball, type AlpinePin } from "./pin.js";

export const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Everything build.sh needs, as KEY='value' lines for `eval`. */
export function shellEnv(pin: AlpinePin, mirrorArg: string | undefined): string {
  const src = resolveSource(mirrorArg, pin);
  const vars: Record<string, string> = {
    ALPINE_BRANCH: pin.branch,
    ALPINE_RELEASE: pin.release.version,
    ALPINE_ARCH: pin.arch,
    MINIROOTFS_FILE: minirootfsName(pin),
    MINIROOTFS_SHA256: pin.release.sha256,
    MINIROOTFS_SOURCE: src.minirootfs ?? "",
    SOURCE_KIND: src.kind,
    SOURCE_MIRROR: src.mirror,
    SOURCE_REPOS: src.kind === "apk-dir" ? "" : src.repositories.join("\n"),
    APK_WORLD: apkWorld(pin.packages).join(" "),
    APK_KERNEL_WORLD: apkWorld(pin.kernelPackages).join(" "),
    OPENCODE_NPM: pin.opencode.npm,
    OPENCODE_VERSION: pin.opencode.version,
    OPENCODE_TGZ: opencodeTarball(pin),
  };
  if (src.kind === "apk-dir") {
    const missing = pin.packages.filter((p) => !apkFileFor(src.files, p.name, p.version));
    if (missing.length > 0) {
      throw new Error(
        `mirror ${src.mirror}: a plain .apk directory must hold every pinned package; missing ${missing.map((p) => `${p.name}-${p.version}.apk`).join(", ")}`,
      );
    }
    vars.SOURCE_APK_FILES = src.files.join("\n");
  }
  return (
    Object.entries(vars)
      .map(([k, v]) => `${k}=${shq(v)}`)
      .join("\n") + "\n"
  );
}
