# Shared helpers for image builds. Source it; it defines functions only.
# Progress lines carry the elapsed time since the build started, so a slow step is
# visible in CI logs as well as on a terminal.

BUILD_T0=${BUILD_T0:-$(date +%s.%N)}

_elapsed() { awk -v a="$BUILD_T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

step() {
  if [ -t 1 ]; then
    printf '\033[1m[%7ss]\033[0m %s\n' "$(_elapsed)" "$*"
  else
    printf '[%7ss] %s\n' "$(_elapsed)" "$*"
  fi
}

note() { printf '           %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "$1 needs root (debootstrap, chroot and device-owner preservation); run it with sudo"
}

need_cmds() {
  local c missing=()
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] || die "missing tools: ${missing[*]} (apt-get install debootstrap busybox-static e2fsprogs cpio lz4 zstd npm)"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Bytes actually used by a directory tree (not apparent size), for sizing filesystems.
tree_bytes() { du -sx --block-size=1 "$1" | cut -f1; }

# Round $1 bytes up to whole MiB.
to_mib() { echo $(( ($1 + 1048575) / 1048576 )); }

# Sparse file sized to the tree plus headroom: the rootfs is copied per VM, not grown,
# so the free space here is what a VM has for package installs outside /root.
make_ext4() {
  local dir=$1 img=$2 label=$3 min_mib=$4 used_mib size_mib
  used_mib=$(to_mib "$(tree_bytes "$dir")")
  size_mib=$(( used_mib * 13 / 10 + 64 ))
  [ "$size_mib" -ge "$min_mib" ] || size_mib=$min_mib
  rm -f "$img"
  truncate -s "${size_mib}M" "$img"
  timeout 300 mkfs.ext4 -q -F -L "$label" -d "$dir" "$img" || die "mkfs.ext4 -d $dir failed"
  timeout 120 e2fsck -fn "$img" >/dev/null 2>&1 || die "e2fsck reports problems in freshly made $img"
  note "$(basename "$img"): ${size_mib} MiB ext4 for ${used_mib} MiB of files"
}
