/**
 * The pinned Alpine image: everything `make image-alpine` installs, by exact version.
 *
 * Trust: the minirootfs is checked against `minirootfs.sha256` below; it ships
 * Alpine's public keys (/etc/apk/keys), and apk, run from inside that rootfs,
 * checks every repository index's signature against them and every package
 * against its index entry. Nothing here is downloaded at import time.
 *
 * Bumping the release is the `release` line (version and its sha256 together);
 * the package pins follow what that branch's index serves (`apk policy NAME`).
 */

export interface ApkPin {
  /** apk package name */
  name: string;
  /** exact version, e.g. 0.52.1-r2 */
  version: string;
}

export interface AlpinePin {
  /** Release branch directory on the mirror, e.g. v3.19. */
  branch: string;
  arch: "x86_64";
  release: { version: string; sha256: string };
  /** Repositories of the branch that an http mirror provides. */
  repositories: string[];
  /** Installed into the rootfs. */
  packages: ApkPin[];
  /** Installed only into the throw-away kernel tree (linux-virt + mkinitfs). */
  kernelPackages: ApkPin[];
  opencode: { npm: string; version: string };
}

export const DEFAULT_MIRROR = "https://dl-cdn.alpinelinux.org/alpine";

export const ALPINE: AlpinePin = {
  branch: "v3.19",
  arch: "x86_64",
  release: { version: "3.19.4", sha256: "a2a87004e87720cbb0372c08b7de9b80748afdfd7fd72d2eab2ec0b074b92211" },
  repositories: ["main", "community"],
  packages: [
    { name: "openrc", version: "0.52.1-r2" },
    { name: "busybox-openrc", version: "1.36.1-r15" },
    // ifupdown-ng drives the `networking` service; banger-net is its eth0 hook.
    { name: "ifupdown-ng", version: "0.12.1-r4" },
    { name: "openssh-server", version: "9.6_p1-r0" },
    { name: "ca-certificates", version: "20240226-r0" },
    { name: "e2fsprogs", version: "1.47.0-r5" },
    // opencode is a bun binary linked against musl's libgcc_s and libstdc++.
    { name: "libgcc", version: "13.2.1_git20231014-r0" },
    { name: "libstdc++", version: "13.2.1_git20231014-r0" },
  ],
  kernelPackages: [
    { name: "linux-virt", version: "6.6.34-r0" },
    { name: "mkinitfs", version: "3.9.1-r0" },
  ],
  opencode: { npm: "opencode-linux-x64-musl", version: "1.18.32" },
};

/** Branches this code knows how to build; anything else is a typo, not a request. */
export const KNOWN_BRANCHES: Record<string, AlpinePin> = { [ALPINE.branch]: ALPINE };

export function pinFor(branch: string | undefined): AlpinePin {
  const key = branch ?? ALPINE.branch;
  const pin = KNOWN_BRANCHES[key];
  if (!pin) {
    throw new Error(`unknown Alpine branch ${key}: this build pins ${Object.keys(KNOWN_BRANCHES).join(", ")} (images/alpine/pin.ts)`);
  }
  return pin;
}

export function minirootfsName(pin: AlpinePin): string {
  return `alpine-minirootfs-${pin.release.version}-${pin.arch}.tar.gz`;
}

const trimSlash = (s: string) => s.replace(/\/+$/, "");

/** Where an Alpine mirror keeps the release tarball: <mirror>/v3.19/releases/x86_64/<file>. */
export function minirootfsUrl(pin: AlpinePin, mirror = DEFAULT_MIRROR): string {
  return `${trimSlash(mirror)}/${pin.branch}/releases/${pin.arch}/${minirootfsName(pin)}`;
}

/** apk repository lines (apk appends /<arch>/APKINDEX.tar.gz itself). */
export function repositoryUrls(pin: AlpinePin, mirror = DEFAULT_MIRROR): string[] {
  return pin.repositories.map((r) => `${trimSlash(mirror)}/${pin.branch}/${r}`);
}

/** `apk add` world entries: name=version, so an index that moved on fails loudly instead of drifting. */
export function apkWorld(pins: ApkPin[]): string[] {
  return pins.map((p) => `${p.name}=${p.version}`);
}

export function opencodeTarball(pin: AlpinePin): string {
  return `${pin.opencode.npm}-${pin.opencode.version}.tgz`;
}
