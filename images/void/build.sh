#!/bin/bash
# The manual Void Linux (musl) guest. Not a make target: Void is rolling, so a build
# is a snapshot a person checks before promoting. See docs/images.md, "Void".
#
#   bash images/void/build.sh --kernel-from IMAGE [--rootfs-tarball FILE]
#
# Steps: the pinned rootfs tarball (sha256-checked), xbps-install of the packages
# inside it (xbps from the tarball, Void's signed repository), runit services for
# ip=, sshd and opencode, the kernel set copied from a registered image, mkfs, a
# manifest; then it prints `banger image register` and `promote` for you to run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LIB="$REPO/images/lib"
source "$LIB/common.sh"
source "$LIB/agent.sh"
source "$HERE/runit.sh"
source "$REPO/images/alpine/kernel.sh"
source "$REPO/images/alpine/openrc.sh" # build_work_seed_tree

CACHE="$REPO/build/cache/void"
WORK="$REPO/build/work/void"
OUT_BASE="$REPO/build/images/void"
BANGER=${BANGER:-$REPO/build/bin/banger}

umount_below() {
  local dest mnt
  dest=$(realpath -m "$1")
  awk -v d="$dest/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}

void_tool() { (cd "$REPO" && timeout 600 npx --no-install vite-node images/void/tool.ts -- "$@"); }
fetch_tool() { (cd "$REPO" && timeout 900 npx --no-install vite-node images/alpine/tool.ts -- fetch "$@"); }

main() {
  local tarball="" tree="$WORK/rootfs" name out kver
  KERNEL_FROM=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --kernel-from) KERNEL_FROM=${2:?}; shift 2 ;;
      --rootfs-tarball) tarball=${2:?}; shift 2 ;;
      *) die "usage: build.sh --kernel-from IMAGE [--rootfs-tarball FILE]" ;;
    esac
  done
  [ -n "$KERNEL_FROM" ] || die "--kernel-from IMAGE is required: the Void path takes its kernel from a registered image"
  need_root "images/void/build.sh"
  need_cmds tar xz mkfs.ext4 debugfs chroot node npx make readelf
  step "pin"
  eval "$(void_tool env)"
  resolve_kernel_from "$KERNEL_FROM"
  step "rootfs tarball $VOID_ROOTFS_FILE"
  mkdir -p "$CACHE"
  fetch_tool "${tarball:-$VOID_ROOTFS_URL}" "$CACHE/$VOID_ROOTFS_FILE" "$VOID_ROOTFS_SHA256"
  trap 'umount_below "$WORK"; rm -rf "$WORK"' EXIT
  rm -rf "$WORK" && mkdir -p "$tree"
  tar -xJf "$CACHE/$VOID_ROOTFS_FILE" -C "$tree" --numeric-owner -p

  step "xbps-install $VOID_PACKAGES (in the tree, signed repository $VOID_REPOSITORY)"
  cp -L /etc/resolv.conf "$tree/etc/resolv.conf"
  mount -t proc proc "$tree/proc"
  mount --bind /dev "$tree/dev"
  # shellcheck disable=SC2086
  timeout 900 chroot "$tree" xbps-install -S -y -R "$VOID_REPOSITORY" xbps
  # shellcheck disable=SC2086
  timeout 900 chroot "$tree" xbps-install -y -R "$VOID_REPOSITORY" $VOID_PACKAGES
  chroot "$tree" xbps-query -l >"$WORK/xbps.list"
  umount_below "$tree"

  step "runit services, banger-agent, opencode, kernel set from $KERNEL_FROM"
  OPENCODE_BIN=$(OPENCODE_PKG=$OPENCODE_NPM bash "$LIB/opencode.sh" "$OPENCODE_VERSION" "$CACHE")
  AGENT_BIN=$(build_agent "$REPO")
  configure_void_rootfs "$tree" "$OPENCODE_BIN" "$AGENT_BIN"
  CACHE_K="$CACHE/kernel"
  mkdir -p "$CACHE_K"
  kernel_from_image "$CACHE_K/set"
  KERNEL_DIR="$CACHE_K/set"
  install_kernel_modules "$tree"
  kver=$(cat "$KERNEL_DIR/kver")

  name="void-$(date -u +%Y%m%d)-$(sha256sum "$WORK/xbps.list" | cut -c1-8)"
  out="$OUT_BASE/$name"
  step "image $name"
  mkdir -p "$out"
  build_work_seed_tree "$WORK/seed"
  truncate -s 2G "$out/rootfs.ext4" && mkfs.ext4 -q -F -L rootfs -d "$tree" "$out/rootfs.ext4"
  truncate -s 64M "$out/work-seed.ext4" && mkfs.ext4 -q -F -L work -d "$WORK/seed" "$out/work-seed.ext4"
  cp "$KERNEL_DIR/vmlinux" "$out/vmlinux"
  cp "$KERNEL_DIR/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
  FILES=$(for f in vmlinux initramfs.cpio.gz rootfs.ext4 work-seed.ext4; do printf '%s %s %s\n' "$f" "$(stat -c %s "$out/$f")" "$(sha256_of "$out/$f")"; done)
  NAME=$name KVER=$kver KSRC="$(cat "$KERNEL_DIR/source")" LIST="$WORK/xbps.list" FILES="$FILES" node -e '
    const e = process.env, fs = require("fs");
    const files = e.FILES.split("\n").filter(Boolean).map((l) => { const [file, s, sha256] = l.split(" "); return { file, sizeBytes: Number(s), sha256 }; });
    fs.writeFileSync(process.argv[1], JSON.stringify({ name: e.NAME, kernelRelease: e.KVER, kernelSource: e.KSRC, xbpsList: fs.readFileSync(e.LIST, "utf8"), files }));
  ' "$WORK/manifest-input.json"
  void_tool manifest "$WORK/manifest-input.json" "$out/manifest.json"

  step "done: $out. Register and promote it yourself:"
  note "$BANGER image register --name $name --kernel $out/vmlinux --initrd $out/initramfs.cpio.gz --rootfs $out/rootfs.ext4 --work-seed $out/work-seed.ext4 --os void --service ssh:22 --service opencode:4096:300"
  note "$BANGER image promote $name --as void"
}

main "$@"
