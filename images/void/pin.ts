/**
 * The Void Linux guest: a manual path (images/void/build.sh, docs/images.md).
 *
 * Void is a rolling distribution and its repositories keep only current package
 * versions, so only the rootfs tarball is pinned by hash; packages are named, not
 * versioned, and the manifest written next to the image records what was installed.
 * The sha256 below is the one the Termux proot-distro project pins for this file;
 * it has not been checked from this project's build hosts (no route to Void's mirrors).
 */
export interface VoidPin {
  rootfs: { url: string; sha256: string };
  /** xbps packages installed into the rootfs (runit and xbps come with it). */
  packages: string[];
  opencode: { npm: string; version: string };
}

export const VOID: VoidPin = {
  rootfs: {
    url: "https://repo-default.voidlinux.org/live/current/void-x86_64-musl-ROOTFS-20250202.tar.xz",
    sha256: "27b2945ea7e2ca2a6ab123ce6f284b255adea2182820da25483d700ffe16e7c2",
  },
  packages: ["openssh", "iproute2", "e2fsprogs", "ca-certificates", "libgcc", "libstdc++"],
  opencode: { npm: "opencode-linux-x64-musl", version: "1.18.32" },
};

export const VOID_REPOSITORY = "https://repo-default.voidlinux.org/current/musl";

export interface VoidManifestInput {
  name: string;
  kernelRelease: string;
  kernelSource: string;
  /** `xbps-query -l` output: "ii name-version_rev  description". */
  xbpsList: string;
  files: { file: string; sizeBytes: number; sha256: string }[];
  builtAt?: string;
}

/** "ii openssh-9.8p1_1  desc" -> { name: openssh, version: 9.8p1_1 } */
export function parseXbpsList(text: string): { name: string; version: string }[] {
  return text
    .split("\n")
    .flatMap((line) => {
      const m = /^\S+\s+(\S+)-([^-\s]+_\d+)(\s|$)/.exec(line.trim());
      return m ? [{ name: m[1], version: m[2] }] : [];
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function voidManifest(pin: VoidPin, i: VoidManifestInput): Record<string, unknown> {
  const packages = parseXbpsList(i.xbpsList);
  const missing = pin.packages.filter((p) => !packages.some((q) => q.name === p));
  if (missing.length > 0) throw new Error(`the rootfs lacks pinned packages: ${missing.join(", ")}`);
  return {
    name: i.name,
    os: "void",
    rootfs: pin.rootfs,
    builtAt: i.builtAt ?? new Date().toISOString(),
    kernel: { release: i.kernelRelease, source: i.kernelSource },
    opencode: { package: `${pin.opencode.npm}@${pin.opencode.version}` },
    services: [
      { name: "ssh", port: 22 },
      { name: "opencode", port: 4096, timeoutS: 300 },
    ],
    files: i.files,
    packages,
  };
}
