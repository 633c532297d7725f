#!/bin/bash
# make image-debian: build the Debian bookworm guest image set offline (Debian
# archive + npm only) and register it with bangerd as the `debian` alias.
#
# Output: build/images/debian/<name>/{vmlinux,initramfs.cpio.gz,rootfs.ext4,work-seed.ext4,manifest.json}
# Caches: build/cache/{kernel/,debootstrap-*.tar.zst,opencode-linux-x64-*}
#
# Env: DEBIAN_MIRROR, OPENCODE_VERSION, BANGER_NO_REGISTER=1, IMAGE_FORCE=1 (rebuild even
# when build/images/debian/<name> is complete), DEBOOTSTRAP_REFRESH=1, ROOTFS_MIN_MIB.
# See docs/images.md for the guest contract.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LIB="$REPO/images/lib"
# shellcheck source=../lib/common.sh
source "$LIB/common.sh"
# shellcheck source=../lib/agent.sh
source "$LIB/agent.sh"
# shellcheck source=../lib/debootstrap.sh
source "$LIB/debootstrap.sh"
# shellcheck source=configure.sh
source "$HERE/configure.sh"

SUITE=bookworm
OS_VERSION=12
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
VARIANT=minbase
INCLUDE=systemd-sysv,openssh-server,iproute2,udev,kmod,ca-certificates
OPENCODE_VERSION=${OPENCODE_VERSION:-1.18.34}
ROOTFS_MIN_MIB=${ROOTFS_MIN_MIB:-1024}
WORK_SEED_MIB=${WORK_SEED_MIB:-64}
# opencode is a 185 MB bun binary: ~2 s to listen on KVM, 60-170 s under TCG on a
# busy 2-core host. The per-image service timeout is a ceiling, not a delay.
OPENCODE_WAIT_S=${OPENCODE_WAIT_S:-300}

CACHE="$REPO/build/cache"
KERNEL_DIR="$CACHE/kernel"
WORK="$REPO/build/work/debian"
OUT_BASE="$REPO/build/images/debian"
BANGER="$REPO/build/bin/banger"

fetch_kernel() {
  bash "$LIB/kernel.sh" "$KERNEL_DIR" 2>&1 | sed 's/^/           /'
  KVER=$(cat "$KERNEL_DIR/kver")
}

fetch_opencode() {
  OPENCODE_BIN=$(bash "$LIB/opencode.sh" "$OPENCODE_VERSION" "$CACHE")
  local got
  got=$(timeout 30 "$OPENCODE_BIN" --version 2>/dev/null) || die "$OPENCODE_BIN does not run on this host"
  [ "$got" = "$OPENCODE_VERSION" ] || die "opencode reports version $got, expected $OPENCODE_VERSION"
}

# Name = date + hash of every input, so an unchanged rebuild on the same day lands on
# the same name (and is skipped), while any input change gives a new immutable image.
compute_image_name() {
  local hash
  hash=$({
    echo "debootstrap=$(debootstrap_key "$SUITE" "$MIRROR" "$VARIANT" "$INCLUDE")"
    echo "kernel=$KVER $(cat "$KERNEL_DIR/deb-version") $(sha256_of "$KERNEL_DIR/vmlinux")"
    echo "opencode=$OPENCODE_VERSION $(sha256_of "$CACHE/opencode-linux-x64-$OPENCODE_VERSION.tgz")"
    echo "busybox=$(sha256_of /bin/busybox) rootfs_min=$ROOTFS_MIN_MIB seed=$WORK_SEED_MIB"
    (cd "$REPO" && find images/debian images/lib guest/agent -type f ! -name '*.md' ! -name smoke.sh -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-8)
  IMAGE_NAME="debian-$OS_VERSION-$(date -u +%Y%m%d)-$hash"
  OUT="$OUT_BASE/$IMAGE_NAME"
}

outputs_complete() {
  local f
  for f in vmlinux initramfs.cpio.gz rootfs.ext4 work-seed.ext4 manifest.json; do
    [ -s "$OUT/$f" ] || return 1
  done
}

write_manifest() {
  local pkgs files="" f
  pkgs=$(dpkg-query --admindir="$WORK/rootfs/var/lib/dpkg" -W -f='${Package}=${Version}\n' | LC_ALL=C sort)
  # Hashing the sparse rootfs dominates; hash all four in parallel.
  for f in vmlinux initramfs.cpio.gz rootfs.ext4 work-seed.ext4; do
    sha256_of "$OUT/$f" >"$OUT/.$f.sha256" &
  done
  wait
  for f in vmlinux initramfs.cpio.gz rootfs.ext4 work-seed.ext4; do
    [ "$(wc -c <"$OUT/.$f.sha256")" = 65 ] || die "hashing $OUT/$f failed"
    files+="$f $(stat -c '%s %b' "$OUT/$f") $(cat "$OUT/.$f.sha256")"$'\n'
    rm -f "$OUT/.$f.sha256"
  done
  FILES="$files" PKGS="$pkgs" OUT="$OUT" NAME="$IMAGE_NAME" KVER="$KVER" KDEB="$(cat "$KERNEL_DIR/deb-version")" \
    OPENCODE="$OPENCODE_VERSION" SUITE="$SUITE" OSV="$OS_VERSION" MIRROR="$MIRROR" timeout 60 node -e '
      const fs = require("fs"), path = require("path");
      const e = process.env;
      const lines = (s) => s.split("\n").filter(Boolean);
      const files = lines(e.FILES).map((l) => {
        const [file, size, blocks, sha256] = l.split(" ");
        return { file, sizeBytes: Number(size), allocatedBytes: Number(blocks) * 512, sha256 };
      });
      const packages = lines(e.PKGS).map((l) => {
        const i = l.indexOf("=");
        return { name: l.slice(0, i), version: l.slice(i + 1) };
      });
      const manifest = {
        name: e.NAME, os: "debian", osVersion: e.OSV, suite: e.SUITE, mirror: e.MIRROR,
        builtAt: new Date().toISOString(),
        kernel: { release: e.KVER, debVersion: e.KDEB },
        opencode: { version: e.OPENCODE },
        services: [{ name: "ssh", port: 22 }, { name: "opencode", port: 4096 }],
        files, packages,
      };
      fs.writeFileSync(path.join(e.OUT, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    '
}

build_artifacts() {
  local tmp_out="$OUT.partial"
  # Leftovers of interrupted builds; nothing else in build/images/debian ends in .partial.
  rm -rf "$OUT_BASE"/*.partial
  trap 'rm -rf "$OUT_BASE"/*.partial "$WORK"' EXIT
  mkdir -p "$tmp_out" "$WORK"

  step "debootstrap $SUITE ($VARIANT)"
  debootstrap_cached "$SUITE" "$MIRROR" "$VARIANT" "$INCLUDE" "$WORK/rootfs" "$CACHE"
  note "$DEBOOTSTRAP_RESULT"

  step "configure rootfs (ssh, banger-net, banger-agent, opencode, modules, trimmed units)"
  configure_rootfs "$WORK/rootfs" "$OPENCODE_BIN" "$KERNEL_DIR/modules" "$KVER" "$AGENT_BIN"
  build_work_seed_tree "$WORK/rootfs" "$WORK/seed"

  step "mkfs rootfs.ext4 + work-seed.ext4 (no mounts)"
  make_ext4 "$WORK/rootfs" "$tmp_out/rootfs.ext4" rootfs "$ROOTFS_MIN_MIB"
  make_ext4 "$WORK/seed" "$tmp_out/work-seed.ext4" work "$WORK_SEED_MIB"

  step "initramfs (busybox + virtio modules)"
  bash "$LIB/initramfs.sh" "$KERNEL_DIR/modules" "$tmp_out/initramfs.cpio.gz"
  cp "$KERNEL_DIR/vmlinux" "$tmp_out/vmlinux"

  step "manifest"
  local final=$OUT
  OUT=$tmp_out write_manifest
  rm -rf "$final" && mv "$tmp_out" "$final"
  ln -sfn "$IMAGE_NAME" "$OUT_BASE/latest"
  rm -rf "$WORK"
  trap - EXIT
}

print_register_commands() {
  echo "  $BANGER image register --name $IMAGE_NAME --kernel $OUT/vmlinux --initrd $OUT/initramfs.cpio.gz --rootfs $OUT/rootfs.ext4 --work-seed $OUT/work-seed.ext4 --os debian --service ssh:22 --service opencode:4096:$OPENCODE_WAIT_S"
  echo "  $BANGER image promote $IMAGE_NAME --as debian"
}

daemon_reachable() {
  [ -x "$BANGER" ] || return 1
  timeout 30 "$BANGER" --json version 2>/dev/null | grep -q '"daemon": *"'
}

register_image() {
  if [ "${BANGER_NO_REGISTER:-0}" = 1 ]; then
    note "BANGER_NO_REGISTER=1: not registering. To register later:"
    print_register_commands
    return 0
  fi
  if ! daemon_reachable; then
    note "bangerd is not reachable (start it with \`$REPO/build/bin/bangerd\`), so the image is built but not registered."
    note "Run these once it is up:"
    print_register_commands
    return 0
  fi
  if timeout 30 "$BANGER" image show "$IMAGE_NAME" >/dev/null 2>&1; then
    note "$IMAGE_NAME is already registered"
  else
    timeout 900 "$BANGER" image register --name "$IMAGE_NAME" --kernel "$OUT/vmlinux" \
      --initrd "$OUT/initramfs.cpio.gz" --rootfs "$OUT/rootfs.ext4" --work-seed "$OUT/work-seed.ext4" \
      --os debian --service ssh:22 --service "opencode:4096:$OPENCODE_WAIT_S" >/dev/null
  fi
  timeout 60 "$BANGER" image promote "$IMAGE_NAME" --as debian
}

main() {
  need_root "make image-debian"
  need_cmds debootstrap dpkg-deb apt-get mkfs.ext4 e2fsck cpio gzip zstd lz4 tar node busybox make readelf
  step "kernel (Debian cloud flavour)"
  fetch_kernel
  note "$KVER -> $KERNEL_DIR"
  step "opencode $OPENCODE_VERSION (npm)"
  fetch_opencode
  step "banger-agent (guest/agent, musl-gcc -static)"
  AGENT_BIN=$(build_agent "$REPO")
  note "$AGENT_BIN ($(stat -c %s "$AGENT_BIN") bytes)"
  compute_image_name
  step "image $IMAGE_NAME"
  if outputs_complete && [ "${IMAGE_FORCE:-0}" != 1 ]; then
    note "already built in $OUT (IMAGE_FORCE=1 rebuilds)"
  else
    build_artifacts
  fi
  step "register with bangerd"
  register_image
  step "done: $OUT"
}

main "$@"
