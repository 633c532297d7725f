# The Alpine image's boot set: vmlinux, initramfs and the modules tree, as functions
# (source after images/lib/common.sh and before build.sh's main). Two sources:
#
#   linux-virt   Alpine's kernel and an initramfs made by Alpine's mkinitfs, run in a
#                throw-away chroot of the minirootfs.
#   --kernel-from IMAGE   a registered image's (or a build directory's) vmlinux and
#                initramfs, plus the modules tree from its rootfs: for hosts where
#                linux-virt cannot be downloaded. The new image owns copies of all of it.
#
# Result: KERNEL_DIR=build/cache/alpine/kernel/<key>/{vmlinux,initramfs.cpio.gz,modules/<kver>,kver,source,boot-args}

# mkinitfs features: base+ext4+virtio cover the disk and network; `banger` adds
# virtio_mmio (Firecracker's cmdline devices) and vsock, which no stock feature loads.
MKINITFS_FEATURES="base ext4 virtio banger"
BANGER_MKINITFS_MODULES='kernel/drivers/virtio/virtio_mmio.ko*
kernel/drivers/block/virtio_blk.ko*
kernel/drivers/net/virtio_net.ko*
kernel/fs/ext4
kernel/net/vmw_vsock'
# Alpine's initramfs loads `modules=` itself; virtio_mmio must be loaded before a
# Firecracker cmdline device exists to be found.
LINUX_VIRT_BOOT_ARGS="console=ttyS0 reboot=k panic=1 rootfstype=ext4 root=/dev/vda rw modules=virtio_mmio,virtio_blk,virtio_net,ext4"

kernel_ready() { [ -s "$1/vmlinux" ] && [ -s "$1/initramfs.cpio.gz" ] && [ -s "$1/kver" ] && [ -f "$1/source" ]; }

# Sets KF_VMLINUX, KF_INITRD, KF_ROOTFS and KF_ID (content hashes) for --kernel-from.
resolve_kernel_from() {
  local from=$1 json
  if [ -d "$from" ]; then
    KF_VMLINUX="$from/vmlinux"
    KF_INITRD=$(ls "$from"/initramfs.cpio.gz "$from"/initrd 2>/dev/null | head -1 || true)
    KF_ROOTFS="$from/rootfs.ext4"
    [ -s "$KF_VMLINUX" ] && [ -n "$KF_INITRD" ] ||
      die "--kernel-from $from: a directory needs vmlinux and initramfs.cpio.gz (a build/images/<os>/<name> directory)"
    KF_ID="dir:$(sha256_of "$KF_VMLINUX") $(sha256_of "$KF_INITRD")"
    return 0
  fi
  if ! json=$(timeout 30 "$BANGER" --json image show "$from" 2>/dev/null); then
    die "--kernel-from $from: not a registered image (\`banger image ls\` lists them) and not a directory; bangerd said: $(timeout 30 "$BANGER" image show "$from" 2>&1 | head -1)"
  fi
  eval "$(printf '%s' "$json" | timeout 30 node -e '
    const img = JSON.parse(require("fs").readFileSync(0, "utf8")).image;
    const a = (role) => img.artifacts.find((x) => x.role === role);
    const q = (s) => `'"'"'${String(s ?? "").replace(/'"'"'/g, "")}'"'"'`;
    console.log(`KF_VMLINUX=${q(a("kernel")?.path)} KF_INITRD=${q(a("initrd")?.path)} KF_ROOTFS=${q(a("rootfs")?.path)}`);
    console.log(`KF_ID=${q(`image:${img.name} ${a("kernel")?.sha256} ${a("initrd")?.sha256}`)}`);
  ')"
  [ -s "$KF_VMLINUX" ] || die "--kernel-from $from: the image has no kernel file"
  [ -s "$KF_INITRD" ] || die "--kernel-from $from: the image has no initramfs, and the Alpine rootfs needs one to load the virtio drivers"
}

kernel_from_image() {
  local dir=$1 kvers tmp
  tmp="$dir.partial"
  rm -rf "$tmp" && mkdir -p "$tmp/modules"
  cp "$KF_VMLINUX" "$tmp/vmlinux"
  cp "$KF_INITRD" "$tmp/initramfs.cpio.gz"
  # The image's initramfs already carries the modules it loads; the rest of the tree
  # comes from its rootfs so the guest can still modprobe (overlay, nf_tables...).
  kvers=$(debugfs -R "ls -p /lib/modules" "$KF_ROOTFS" 2>/dev/null | awk -F/ '$6 != "." && $6 != ".." && $6 != "" {print $6}')
  [ "$(printf '%s\n' "$kvers" | grep -c .)" = 1 ] ||
    die "--kernel-from: expected exactly one /lib/modules/<release> in $KF_ROOTFS, found: ${kvers:-none}"
  timeout 300 debugfs -R "rdump /lib/modules/$kvers $tmp/modules" "$KF_ROOTFS" >/dev/null 2>&1 ||
    die "--kernel-from: cannot copy /lib/modules/$kvers out of $KF_ROOTFS"
  [ -d "$tmp/modules/$kvers/kernel" ] || die "--kernel-from: $KF_ROOTFS has no modules under /lib/modules/$kvers/kernel"
  chown -R 0:0 "$tmp/modules"
  echo "$kvers" >"$tmp/kver"
  echo "kernel-from $KERNEL_FROM ($KF_ID)" >"$tmp/source"
  : >"$tmp/boot-args"
  rm -rf "$dir" && mv "$tmp" "$dir"
}

kernel_from_linux_virt() {
  local dir=$1 tree="$WORK/ktree" kver tmp="$dir.partial"
  rm -rf "$tmp" && mkdir -p "$tmp/modules" "$WORK"
  trap 'umount_below "$WORK"; rm -rf "$WORK" "$tmp"' EXIT
  unpack_minirootfs "$tree"
  if [ "$SOURCE_KIND" = apk-dir ]; then
    printf '%s\n' "$SOURCE_APK_FILES" | grep -q '/linux-virt-' || die "the .apk directory $SOURCE_MIRROR has no linux-virt; use --kernel-from IMAGE"
    # shellcheck disable=SC2046
    apk_in "$tree" add $(printf '%s\n' "$SOURCE_APK_FILES" | sed "s#^$SOURCE_MIRROR#/mnt/banger-mirror#")
  else
    # shellcheck disable=SC2086
    apk_in "$tree" add $APK_KERNEL_WORLD
  fi
  kver=$(ls "$tree/lib/modules" | head -1)
  [ -n "$kver" ] && [ -f "$tree/boot/vmlinuz-virt" ] || die "linux-virt installed no /boot/vmlinuz-virt or /lib/modules/<release>"
  mkdir -p "$tree/etc/mkinitfs/features.d"
  printf '%s\n' "$BANGER_MKINITFS_MODULES" >"$tree/etc/mkinitfs/features.d/banger.modules"
  printf 'features="%s"\n' "$MKINITFS_FEATURES" >"$tree/etc/mkinitfs/mkinitfs.conf"
  mount -t proc proc "$tree/proc"
  timeout 600 chroot "$tree" mkinitfs -c /etc/mkinitfs/mkinitfs.conf -o /boot/initramfs-banger "$kver" >"$WORK/mkinitfs.log" 2>&1 ||
    { umount_below "$tree"; cat "$WORK/mkinitfs.log" >&2; die "mkinitfs failed in the Alpine chroot"; }
  umount_below "$tree"
  bash "$LIB/kernel.sh" --extract "$tree/boot/vmlinuz-virt" "$tmp/vmlinux" 2>&1 | sed 's/^/           /'
  [ -s "$tmp/vmlinux" ] || die "no vmlinux extracted from vmlinuz-virt"
  cp "$tree/boot/initramfs-banger" "$tmp/initramfs.cpio.gz"
  mv "$tree/lib/modules/$kver" "$tmp/modules/$kver"
  echo "$kver" >"$tmp/kver"
  echo "linux-virt ${APK_KERNEL_WORLD}" >"$tmp/source"
  echo "$LINUX_VIRT_BOOT_ARGS" >"$tmp/boot-args"
  rm -rf "$dir" && mv "$tmp" "$dir"
  umount_below "$WORK"
  rm -rf "$WORK"
  trap - EXIT
}

# Sets KERNEL_DIR, KERNEL_KEY and KERNEL_BOOT_ARGS.
ensure_kernel() {
  local key_src
  if [ -n "${KERNEL_FROM:-}" ]; then
    resolve_kernel_from "$KERNEL_FROM"
    key_src="from $KF_ID"
  else
    key_src="linux-virt $APK_KERNEL_WORLD $MINIROOTFS_SHA256 $SOURCE_KIND:$SOURCE_MIRROR $MKINITFS_FEATURES $BANGER_MKINITFS_MODULES"
  fi
  KERNEL_KEY=$(printf '%s\n%s\n' "$key_src" "$(declare -f kernel_from_image kernel_from_linux_virt)" | sha256sum | cut -c1-16)
  KERNEL_DIR="$CACHE/kernel/$KERNEL_KEY"
  if kernel_ready "$KERNEL_DIR"; then
    note "cached: $(cat "$KERNEL_DIR/source") -> $KERNEL_DIR"
  elif [ -n "${KERNEL_FROM:-}" ]; then
    kernel_from_image "$KERNEL_DIR"
    note "$(cat "$KERNEL_DIR/kver") from $KERNEL_FROM -> $KERNEL_DIR"
  else
    kernel_from_linux_virt "$KERNEL_DIR"
    note "linux-virt $(cat "$KERNEL_DIR/kver") + mkinitfs ($MKINITFS_FEATURES) -> $KERNEL_DIR"
  fi
  KERNEL_BOOT_ARGS=$(cat "$KERNEL_DIR/boot-args")
}

install_kernel_modules() {
  local root=$1 kver
  kver=$(cat "$KERNEL_DIR/kver")
  rm -rf "$root/lib/modules/$kver"
  mkdir -p "$root/lib/modules"
  cp -a "$KERNEL_DIR/modules/$kver" "$root/lib/modules/$kver"
  [ -f "$root/lib/modules/$kver/modules.dep" ] || die "modules for $kver have no modules.dep"
}
