#!/bin/bash
# Minimal busybox initramfs whose only job is to load the virtio drivers (modules in
# every Debian kernel flavour) and hand over to the real root on /dev/vda.
#
#   bash images/lib/initramfs.sh MODULES_DIR OUT.cpio.gz
#
# MODULES_DIR is a lib/modules/<kver> tree. Modules are loaded in the order below,
# which is their dependency order (there is no modprobe/modules.dep in here).
set -euo pipefail

MODULES_DIR=${1:?usage: initramfs.sh MODULES_DIR OUT.cpio.gz}
OUT=${2:?usage: initramfs.sh MODULES_DIR OUT.cpio.gz}
BUSYBOX=${BUSYBOX:-/bin/busybox}
INITRAMFS_MODULES=${INITRAMFS_MODULES:-"virtio_ring virtio virtio_mmio virtio_blk failover net_failover virtio_net vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport virtio-rng virtio_console"}

die() { printf 'initramfs: error: %s\n' "$*" >&2; exit 1; }

# Accept .ko and compressed .ko.{xz,zst,gz}; busybox insmod wants plain .ko.
copy_module() {
  local name=$1 dest=$2 src alt
  alt=${name//-/_}
  src=$(find "$MODULES_DIR" \( -name "$name.ko*" -o -name "$alt.ko*" \) -print -quit)
  [ -n "$src" ] || die "module $name not found under $MODULES_DIR"
  case "$src" in
    *.ko) cp "$src" "$dest/$name.ko" ;;
    *.ko.xz) xz -d -c "$src" >"$dest/$name.ko" ;;
    *.ko.zst) zstd -q -d -c "$src" >"$dest/$name.ko" ;;
    *.ko.gz) gzip -d -c "$src" >"$dest/$name.ko" ;;
    *) die "unknown module format: $src" ;;
  esac
}

write_init() {
  cat >"$1" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $INITRAMFS_MODULES; do
  insmod /lib/modules/\$m.ko || echo "initramfs: insmod \$m failed"
done
# Bounded: a missing disk should end in a visible error, not a silent hang.
i=0
while [ ! -b /dev/vda ] && [ \$i -lt 200 ]; do sleep 0.05; i=\$((i + 1)); done
mount -t ext4 -o rw,noatime /dev/vda /newroot || {
  echo "initramfs: cannot mount /dev/vda as ext4 (no root disk, or not ext4)"
  exec sh
}
umount /sys /proc
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
INIT
  chmod 755 "$1"
}

main() {
  [ -x "$BUSYBOX" ] && "$BUSYBOX" --list | grep -qx switch_root ||
    die "$BUSYBOX is not a full static busybox (apt-get install busybox-static)"
  local m
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/banger-initramfs.XXXXXX")
  trap 'rm -rf "${tmp:-}"' EXIT
  chmod 755 "$tmp"
  mkdir -p "$tmp"/{bin,dev,proc,sys,newroot,lib/modules}
  cp "$BUSYBOX" "$tmp/bin/busybox"
  for m in $INITRAMFS_MODULES; do copy_module "$m" "$tmp/lib/modules"; done
  write_init "$tmp/init"
  # Fixed mtimes and sorted names: the same inputs give the same archive bytes.
  find "$tmp" -exec touch -h -d @0 {} +
  (cd "$tmp" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 --reproducible | gzip -n -6) >"$OUT.partial"
  mv "$OUT.partial" "$OUT"
}

tmp=
main
