#!/bin/bash
# make alpine-kernel | alpine-rootfs | alpine-register | image-alpine: the pinned Alpine
# guest (images/alpine/pin.ts), registered with bangerd and promoted as `alpine`.
#
#   bash images/alpine/build.sh kernel|rootfs|register|all [--mirror URL|DIR] [--kernel-from IMAGE]
#
# Each stage runs the ones before it; they are cached, so that costs seconds.
# Output: build/images/alpine/<name>/{vmlinux,initramfs.cpio.gz,rootfs.ext4,work-seed.ext4,manifest.json}
# Caches: build/cache/alpine/{minirootfs,kernel/<key>,opencode-*}
# Env: BANGER_ALPINE_MIRROR (= --mirror), BANGER_NO_REGISTER=1, IMAGE_FORCE=1, OPENCODE_WAIT_S.
# See docs/images.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LIB="$REPO/images/lib"
# shellcheck source=../lib/common.sh
source "$LIB/common.sh"
# shellcheck source=../lib/agent.sh
source "$LIB/agent.sh"
# shellcheck source=openrc.sh
source "$HERE/openrc.sh"
# shellcheck source=kernel.sh
source "$HERE/kernel.sh"

CACHE="$REPO/build/cache/alpine"
WORK="$REPO/build/work/alpine"
OUT_BASE="$REPO/build/images/alpine"
BANGER=${BANGER:-$REPO/build/bin/banger}
ROOTFS_MIN_MIB=${ROOTFS_MIN_MIB:-512}
WORK_SEED_MIB=${WORK_SEED_MIB:-64}
# Same ceiling as the Debian image: opencode's cold start under TCG takes minutes.
OPENCODE_WAIT_S=${OPENCODE_WAIT_S:-300}

tool() { (cd "$REPO" && timeout 900 npx --no-install vite-node images/alpine/tool.ts -- "$@"); }

parse_args() {
  STAGE=${1:-all}
  shift || true
  MIRROR_ARG=${BANGER_ALPINE_MIRROR:-}
  KERNEL_FROM=${BANGER_ALPINE_KERNEL_FROM:-}
  BRANCH_ARG=${BANGER_ALPINE_BRANCH:-}
  while [ $# -gt 0 ]; do
    case "$1" in
      --mirror) MIRROR_ARG=${2:?--mirror needs a URL or directory}; shift 2 ;;
      --kernel-from) KERNEL_FROM=${2:?--kernel-from needs a registered image}; shift 2 ;;
      --branch) BRANCH_ARG=${2:?--branch needs an Alpine branch such as v3.19}; shift 2 ;;
      *) die "unknown argument $1 (usage: build.sh kernel|rootfs|register|all [--mirror URL|DIR] [--kernel-from IMAGE] [--branch vX.Y])" ;;
    esac
  done
  case "$STAGE" in kernel | rootfs | register | all) ;; *) die "unknown stage $STAGE (kernel, rootfs, register or all)" ;; esac
}

load_pin() {
  local env
  env=$(tool env ${MIRROR_ARG:+--mirror "$MIRROR_ARG"} ${BRANCH_ARG:+--branch "$BRANCH_ARG"}) || die "cannot resolve the Alpine package source (see above)"
  eval "$env"
}

# Bind the mirror read-only into the tree when it is local, and give apk the
# tree's own keys: the signed indexes are checked against what the minirootfs ships.
apk_in() {
  local root=$1
  shift
  local -a src=()
  case "$SOURCE_KIND" in
    http)
      printf '%s\n' "$SOURCE_REPOS" >"$root/etc/apk/repositories.banger"
      cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true ;;
    index-dir)
      printf '%s\n' "$SOURCE_REPOS" | sed "s#^$SOURCE_MIRROR#/mnt/banger-mirror#" >"$root/etc/apk/repositories.banger" ;;
    apk-dir)
      : >"$root/etc/apk/repositories.banger"
      src=(--no-network) ;;
  esac
  if [ "$SOURCE_KIND" != http ]; then
    mkdir -p "$root/mnt/banger-mirror"
    mount --bind "$SOURCE_MIRROR" "$root/mnt/banger-mirror"
    mount -o remount,bind,ro "$root/mnt/banger-mirror"
  fi
  mount -t proc proc "$root/proc"
  local rc=0
  timeout 900 chroot "$root" /sbin/apk --repositories-file /etc/apk/repositories.banger --keys-dir /etc/apk/keys \
    --no-progress --no-cache "${src[@]}" "$@" >"$WORK/apk.log" 2>&1 || rc=$?
  umount_below "$root"
  rm -f "$root/etc/apk/repositories.banger"
  rmdir "$root/mnt/banger-mirror" 2>/dev/null || true
  sed 's/^/           apk: /' "$WORK/apk.log" | grep -v 'Executing\|Installing\|^           apk: OK' || true
  [ "$rc" = 0 ] || die "apk $* failed in the Alpine chroot (exit $rc); log above. A signature or checksum error names the file; nothing was registered or cached"
  grep -h '^OK:' "$WORK/apk.log" | sed 's/^/           apk: /' || true
}

umount_below() {
  local dest mnt
  dest=$(realpath -m "$1")
  awk -v d="$dest/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done
}

fetch_minirootfs() {
  MINIROOTFS="$CACHE/$MINIROOTFS_FILE"
  local src=$MINIROOTFS_SOURCE
  if [ -z "$src" ]; then
    [ -s "$MINIROOTFS" ] || die "the mirror $SOURCE_MIRROR has no $MINIROOTFS_FILE (put it at $SOURCE_MIRROR/$ALPINE_BRANCH/releases/$ALPINE_ARCH/ or in $CACHE)"
    src=$MINIROOTFS
  fi
  tool fetch "$src" "$MINIROOTFS" "$MINIROOTFS_SHA256" || die "minirootfs $MINIROOTFS_FILE was not accepted; nothing was cached"
}

unpack_minirootfs() {
  local dest=$1
  rm -rf "$dest"
  mkdir -p "$dest"
  tar -xzf "$MINIROOTFS" -C "$dest" --numeric-owner --same-owner -p
}

fetch_opencode() {
  OPENCODE_BIN=$(OPENCODE_PKG=$OPENCODE_NPM bash "$LIB/opencode.sh" "$OPENCODE_VERSION" "$CACHE")
}

# Runs opencode inside the tree: proves the musl build finds libgcc_s and libstdc++.
# bun crashes without /dev and /proc, so both are mounted for the run.
check_opencode_runs() {
  local root=$1 got libs rc=0
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  libs=$(chroot "$root" /lib/ld-musl-x86_64.so.1 --list /usr/local/bin/opencode 2>&1 | awk '/=>/{print $1"->"$3}' | tr '\n' ' ')
  got=$(timeout 120 chroot "$root" /usr/local/bin/opencode --version 2>&1) || rc=$?
  umount_below "$root"
  [ "$rc" = 0 ] || die "opencode does not run in the Alpine tree (exit $rc): $(printf '%s' "$got" | tail -5)"
  [ "$got" = "$OPENCODE_VERSION" ] || die "opencode in the Alpine tree reports $got, expected $OPENCODE_VERSION"
  note "opencode $got runs in the tree; links $libs"
}

# Name = release + date + hash of every input (pins, package source, kernel set,
# opencode, the code under images/): an unchanged rebuild lands on the same name.
compute_image_name() {
  local hash
  hash=$({
    echo "release=$ALPINE_RELEASE $MINIROOTFS_SHA256 world=$APK_WORLD source=$SOURCE_KIND:$SOURCE_MIRROR"
    echo "kernel=$KERNEL_KEY opencode=$OPENCODE_NPM@$OPENCODE_VERSION $(sha256_of "$CACHE/$OPENCODE_TGZ")"
    echo "rootfs_min=$ROOTFS_MIN_MIB seed=$WORK_SEED_MIB"
    (cd "$REPO" && find images/alpine images/lib images/debian/files guest/agent -type f ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-8)
  IMAGE_NAME="alpine-$ALPINE_RELEASE-$(date -u +%Y%m%d)-$hash"
  OUT="$OUT_BASE/$IMAGE_NAME"
}

outputs_complete() {
  local f
  for f in vmlinux initramfs.cpio.gz rootfs.ext4 work-seed.ext4 manifest.json; do [ -s "$OUT/$f" ] || return 1; done
}

build_rootfs() {
  local tmp_out="$OUT.partial" tree="$WORK/rootfs"
  rm -rf "$OUT_BASE"/*.partial
  trap 'umount_below "$WORK"; rm -rf "$OUT_BASE"/*.partial "$WORK"' EXIT
  mkdir -p "$tmp_out" "$WORK"

  step "minirootfs $ALPINE_RELEASE + apk add (pinned, signed index: $SOURCE_KIND)"
  unpack_minirootfs "$tree"
  if [ "$SOURCE_KIND" = apk-dir ]; then
    local files
    files=$(printf '%s\n' "$SOURCE_APK_FILES" | sed "s#^$SOURCE_MIRROR#/mnt/banger-mirror#" | tr '\n' ' ')
    # shellcheck disable=SC2086
    apk_in "$tree" add $files
  else
    # shellcheck disable=SC2086
    apk_in "$tree" add $APK_WORLD
  fi

  step "configure OpenRC services, sshd, banger-net, banger-agent, opencode, kernel modules"
  configure_alpine_rootfs "$tree" "$OPENCODE_BIN" "$AGENT_BIN"
  install_kernel_modules "$tree"
  check_opencode_runs "$tree"
  build_work_seed_tree "$WORK/seed"

  step "mkfs rootfs.ext4 + work-seed.ext4 (no mounts)"
  make_ext4 "$tree" "$tmp_out/rootfs.ext4" rootfs "$ROOTFS_MIN_MIB"
  make_ext4 "$WORK/seed" "$tmp_out/work-seed.ext4" work "$WORK_SEED_MIB"
  cp "$KERNEL_DIR/vmlinux" "$tmp_out/vmlinux"
  cp "$KERNEL_DIR/initramfs.cpio.gz" "$tmp_out/initramfs.cpio.gz"

  step "manifest"
  local pkgs
  pkgs=$(awk -F: '/^P:/{p=$2} /^V:/{print p"="$2}' "$tree/lib/apk/db/installed" | LC_ALL=C sort)
  PKGS="$pkgs" write_manifest "$tmp_out"
  rm -rf "$OUT" && mv "$tmp_out" "$OUT"
  ln -sfn "$IMAGE_NAME" "$OUT_BASE/latest"
  umount_below "$WORK"
  rm -rf "$WORK"
  trap - EXIT
}

write_manifest() {
  local dir=$1 f files=""
  for f in vmlinux initramfs.cpio.gz rootfs.ext4 work-seed.ext4; do
    files+="$f $(stat -c '%s %b' "$dir/$f") $(sha256_of "$dir/$f")"$'\n'
  done
  FILES="$files" OUT="$dir" NAME="$IMAGE_NAME" REL="$ALPINE_RELEASE" BRANCH="$ALPINE_BRANCH" \
    SRC="$SOURCE_KIND:$SOURCE_MIRROR" KVER="$(cat "$KERNEL_DIR/kver")" KSRC="$(cat "$KERNEL_DIR/source")" \
    OPENCODE="$OPENCODE_NPM@$OPENCODE_VERSION" WAIT="$OPENCODE_WAIT_S" timeout 60 node -e '
      const fs = require("fs"), path = require("path"), e = process.env;
      const lines = (s) => s.split("\n").filter(Boolean);
      const files = lines(e.FILES).map((l) => {
        const [file, size, blocks, sha256] = l.split(" ");
        return { file, sizeBytes: Number(size), allocatedBytes: Number(blocks) * 512, sha256 };
      });
      const packages = lines(e.PKGS).map((l) => { const i = l.indexOf("="); return { name: l.slice(0, i), version: l.slice(i + 1) }; });
      const manifest = {
        name: e.NAME, os: "alpine", osVersion: e.REL, branch: e.BRANCH, packageSource: e.SRC,
        builtAt: new Date().toISOString(),
        kernel: { release: e.KVER, source: e.KSRC },
        opencode: { package: e.OPENCODE },
        services: [{ name: "ssh", port: 22 }, { name: "opencode", port: 4096, timeoutS: Number(e.WAIT) }],
        files, packages,
      };
      fs.writeFileSync(path.join(e.OUT, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    '
}

register_args() {
  REGISTER_ARGS=(image register --name "$IMAGE_NAME" --kernel "$OUT/vmlinux" --initrd "$OUT/initramfs.cpio.gz"
    --rootfs "$OUT/rootfs.ext4" --work-seed "$OUT/work-seed.ext4" --os alpine
    --service ssh:22 --service "opencode:4096:$OPENCODE_WAIT_S")
  [ -z "${KERNEL_BOOT_ARGS:-}" ] || REGISTER_ARGS+=(--boot-args "$KERNEL_BOOT_ARGS")
}

register_image() {
  register_args
  if [ "${BANGER_NO_REGISTER:-0}" = 1 ]; then
    note "BANGER_NO_REGISTER=1: not registering. To register later:"
    note "  $BANGER ${REGISTER_ARGS[*]}"
    note "  $BANGER image promote $IMAGE_NAME --as alpine"
    return 0
  fi
  if timeout 30 "$BANGER" image show "$IMAGE_NAME" >/dev/null 2>&1; then
    note "$IMAGE_NAME is already registered"
  else
    timeout 900 "$BANGER" "${REGISTER_ARGS[@]}" >/dev/null || die "banger image register $IMAGE_NAME failed (is bangerd running? \`$BANGER daemon start\`)"
    note "registered $IMAGE_NAME"
  fi
  timeout 60 "$BANGER" image promote "$IMAGE_NAME" --as alpine
}

main() {
  parse_args "$@"
  need_root "make image-alpine"
  need_cmds tar gzip cpio mkfs.ext4 e2fsck debugfs node npx chroot sha256sum make readelf
  step "pinned manifest + package source"
  load_pin
  note "Alpine $ALPINE_RELEASE ($ALPINE_BRANCH, $ALPINE_ARCH) from $SOURCE_KIND $SOURCE_MIRROR"
  # Checked before any download: a typo here should cost seconds, not a build.
  [ -z "$KERNEL_FROM" ] || resolve_kernel_from "$KERNEL_FROM"
  mkdir -p "$CACHE"
  step "minirootfs $MINIROOTFS_FILE (sha256 $MINIROOTFS_SHA256)"
  fetch_minirootfs
  if [ -n "$KERNEL_FROM" ]; then step "kernel (from image $KERNEL_FROM)"; else step "kernel (linux-virt + mkinitfs)"; fi
  ensure_kernel
  [ "$STAGE" = kernel ] && { step "done: kernel set in $KERNEL_DIR"; return 0; }
  step "opencode $OPENCODE_NPM@$OPENCODE_VERSION (npm)"
  fetch_opencode
  step "banger-agent (guest/agent, musl-gcc -static)"
  AGENT_BIN=$(build_agent "$REPO")
  compute_image_name
  step "image $IMAGE_NAME"
  if outputs_complete && [ "${IMAGE_FORCE:-0}" != 1 ]; then
    note "already built in $OUT (IMAGE_FORCE=1 rebuilds)"
    ln -sfn "$IMAGE_NAME" "$OUT_BASE/latest"
  else
    build_rootfs
  fi
  [ "$STAGE" = rootfs ] && { step "done: $OUT"; return 0; }
  step "register with bangerd, promote as alpine"
  register_image
  step "done: $OUT"
}

# Sourced by tests for its functions; run as a script it builds.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
