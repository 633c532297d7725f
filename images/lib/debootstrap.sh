# debootstrap with a content-keyed tarball cache. Source it after common.sh.
#
#   debootstrap_cached SUITE MIRROR VARIANT INCLUDE_CSV DEST CACHE_DIR
#
# The key covers every input that changes the tree (suite, mirror, variant, include
# list, debootstrap's own version and the text of the functions below), so editing
# any of them rebuilds instead of silently reusing a stale tree. The Debian archive
# moving on does not change the key: delete build/cache/debootstrap-*.tar.zst (or set
# DEBOOTSTRAP_REFRESH=1) to pick up new package versions.

DEBOOTSTRAP_TIMEOUT=${DEBOOTSTRAP_TIMEOUT:-540}

debootstrap_key() {
  local suite=$1 mirror=$2 variant=$3 include=$4
  {
    printf 'cache-format=2\nsuite=%s\nmirror=%s\nvariant=%s\ninclude=%s\n' "$suite" "$mirror" "$variant" "$include"
    printf 'debootstrap=%s\n' "$(dpkg-query -W -f='${Version}' debootstrap 2>/dev/null || echo unknown)"
    declare -f debootstrap_run debootstrap_pack debootstrap_unpack
  } | sha256sum | cut -c1-16
}

# debootstrap mounts proc/sys inside the target and leaves them behind when it fails;
# only mounts below our own target are touched.
debootstrap_umount_below() {
  local dest mnt
  dest=$(realpath -m "$1")
  awk -v d="$dest/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done
}

debootstrap_run() {
  local suite=$1 mirror=$2 variant=$3 include=$4 dest=$5 log=$6
  if ! timeout "$DEBOOTSTRAP_TIMEOUT" debootstrap --variant="$variant" --include="$include" \
    "$suite" "$dest" "$mirror" >"$log" 2>&1; then
    debootstrap_umount_below "$dest"
    tail -n 20 "$log" >&2
    die "debootstrap failed (full log: $log); check that $mirror is reachable or set DEBIAN_MIRROR"
  fi
  debootstrap_umount_below "$dest"
  # Downloaded .debs are only needed to build the tree; keeping them would bloat the cache.
  rm -f "$dest"/var/cache/apt/archives/*.deb
}

# Owners are stored numerically: the host's passwd must not remap the guest's users.
debootstrap_pack() {
  local src=$1 out=$2
  tar -C "$src" --numeric-owner --xattrs --xattrs-include='*' --acls -cf - . |
    zstd -q -T0 -3 -o "$out.partial" && mv "$out.partial" "$out"
}

debootstrap_unpack() {
  local tarball=$1 dest=$2
  mkdir -p "$dest"
  zstd -q -d -c "$tarball" |
    tar -C "$dest" --numeric-owner --xattrs --xattrs-include='*' --acls --same-permissions --same-owner -xf -
}

debootstrap_cached() {
  local suite=$1 mirror=$2 variant=$3 include=$4 dest=$5 cache=$6 key tarball
  key=$(debootstrap_key "$suite" "$mirror" "$variant" "$include")
  tarball="$cache/debootstrap-$suite-$key.tar.zst"
  rm -rf "$dest"
  if [ -s "$tarball" ] && [ "${DEBOOTSTRAP_REFRESH:-0}" != 1 ]; then
    debootstrap_unpack "$tarball" "$dest"
    DEBOOTSTRAP_RESULT="cached ($(basename "$tarball"))"
    return 0
  fi
  mkdir -p "$cache"
  debootstrap_run "$suite" "$mirror" "$variant" "$include" "$dest" "$cache/debootstrap-$suite-$key.log"
  debootstrap_pack "$dest" "$tarball"
  DEBOOTSTRAP_RESULT="fresh, cached as $(basename "$tarball")"
}
