#!/bin/bash
# Fetch the Debian cloud kernel and turn it into what QEMU microvm / Firecracker boot:
# an uncompressed ELF vmlinux (PVH entry) plus the matching modules tree.
#
#   bash images/lib/kernel.sh OUTDIR        (callers default to build/cache/kernel)
#   bash images/lib/kernel.sh --extract BZIMAGE OUT   (only the vmlinux extraction; any distro's bzImage)
#
# Writes OUTDIR/vmlinux, OUTDIR/kver, OUTDIR/modules/ (= lib/modules/<kver>),
# OUTDIR/config and OUTDIR/deb-version. Skips all work when OUTDIR/kver already
# names the kernel apt would pick now.
# Env: KERNEL_META_PKG (default linux-image-cloud-amd64), APT_TIMEOUT (default 120 s).
set -euo pipefail

OUTDIR=${1:?usage: kernel.sh OUTDIR | kernel.sh --extract BZIMAGE OUT}
META_PKG=${KERNEL_META_PKG:-linux-image-cloud-amd64}
APT_TIMEOUT=${APT_TIMEOUT:-120}

log() { printf 'kernel: %s\n' "$*" >&2; }
die() { printf 'kernel: error: %s\n' "$*" >&2; exit 1; }

# The meta package depends on exactly one concrete linux-image-<kver>; that name
# (minus the prefix) is the kernel release and the cache key.
candidate_image_pkg() {
  local dep
  dep=$(timeout "$APT_TIMEOUT" apt-cache depends "$META_PKG" 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$dep" ] || die "cannot resolve $META_PKG via apt-cache (run apt-get update?)"
  printf '%s\n' "$dep"
}

download_debs() {
  local dir=$1 pkg=$2
  (cd "$dir" && timeout "$APT_TIMEOUT" apt-get download -qq "$pkg" 2>&1 | grep -v 'unsandboxed as root' >&2 || true)
  ls "$dir"/"${pkg}"_*.deb >/dev/null 2>&1 || die "apt-get download $pkg failed"
}

# Offset of the first occurrence of a byte pattern (grep -P escapes) in a file, or empty.
magic_offset() {
  LC_ALL=C grep -obUaP "$2" "$1" 2>/dev/null | head -1 | cut -d: -f1 || true
}

is_x86_64_elf() {
  # ELF magic, ELFCLASS64, little endian, e_machine 0x3e (x86-64)
  [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || return 1
  [ "$(od -An -tx1 -j4 -N2 "$1" | tr -d ' \n')" = 0201 ] || return 1
  [ "$(od -An -tx1 -j18 -N2 "$1" | tr -d ' \n')" = 3e00 ] || return 1
}

# Same idea as the kernel's scripts/extract-vmlinux: try each compressor whose magic is
# present, keep the first output that is an x86-64 ELF. Trailing garbage after the
# payload makes decompressors exit non-zero, so only the result is checked.
extract_vmlinux() {
  local bz=$1 out=$2 name magic cmd off
  local -a tries=(
    "lz4|\x02\x21\x4c\x18|lz4 -d -c"
    "zstd|\x28\xb5\x2f\xfd|zstd -d -c -q"
    "xz|\xfd\x37\x7a\x58\x5a\x00|xz -d -c -q"
    "gzip|\x1f\x8b\x08|gzip -d -c -q"
  )
  if is_x86_64_elf "$bz"; then cp "$bz" "$out"; return 0; fi
  for t in "${tries[@]}"; do
    IFS='|' read -r name magic cmd <<<"$t"
    off=$(magic_offset "$bz" "$magic")
    [ -n "$off" ] || continue
    command -v "${cmd%% *}" >/dev/null || { log "found $name payload but ${cmd%% *} is not installed"; continue; }
    tail -c +$((off + 1)) "$bz" | $cmd >"$out" 2>/dev/null || true
    if [ -s "$out" ] && is_x86_64_elf "$out"; then log "vmlinux: $name payload at offset $off"; return 0; fi
  done
  rm -f "$out"
  die "no x86-64 ELF found inside $bz"
}

main() {
  local pkg kver
  pkg=$(candidate_image_pkg)
  kver=${pkg#linux-image-}
  mkdir -p "$OUTDIR"
  if [ -f "$OUTDIR/kver" ] && [ "$(cat "$OUTDIR/kver")" = "$kver" ] &&
    [ -s "$OUTDIR/vmlinux" ] && [ -d "$OUTDIR/modules/kernel" ]; then
    log "cached $kver in $OUTDIR"
    return 0
  fi
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/banger-kernel.XXXXXX")
  trap 'rm -rf "${tmp:-}"' EXIT
  log "downloading $META_PKG -> $pkg"
  mkdir -p "$tmp/debs" "$tmp/root"
  download_debs "$tmp/debs" "$META_PKG"
  download_debs "$tmp/debs" "$pkg"
  dpkg -x "$tmp/debs/${pkg}"_*.deb "$tmp/root"
  [ -f "$tmp/root/boot/vmlinuz-$kver" ] || die "package $pkg has no /boot/vmlinuz-$kver"
  [ -d "$tmp/root/lib/modules/$kver" ] || die "package $pkg has no /lib/modules/$kver"
  extract_vmlinux "$tmp/root/boot/vmlinuz-$kver" "$tmp/vmlinux"

  # Replace atomically-ish: kver is written last so an interrupted run is never "cached".
  rm -f "$OUTDIR/kver"
  rm -rf "$OUTDIR/modules" "$OUTDIR/vmlinux"
  mv "$tmp/vmlinux" "$OUTDIR/vmlinux"
  mv "$tmp/root/lib/modules/$kver" "$OUTDIR/modules"
  cp "$tmp/root/boot/config-$kver" "$OUTDIR/config" 2>/dev/null || true
  dpkg-deb -f "$tmp/debs/${pkg}"_*.deb Version >"$OUTDIR/deb-version"
  printf '%s\n' "$kver" >"$OUTDIR/kver"
  log "ready: $kver ($(du -h "$OUTDIR/vmlinux" | cut -f1) vmlinux)"
}

tmp=
if [ "$OUTDIR" = --extract ]; then
  [ -f "${2:-}" ] && [ -n "${3:-}" ] || die "usage: kernel.sh --extract BZIMAGE OUT"
  extract_vmlinux "$2" "$3"
  exit 0
fi
main
