# Turn a debootstrapped bookworm tree into the banger guest. Source it after
# images/lib/common.sh and images/lib/agent.sh. Everything is done by writing files into the tree; the only
# chroot is depmod, which must be the guest's own kmod.

DEBIAN_FILES_DIR=${DEBIAN_FILES_DIR:-$(dirname "${BASH_SOURCE[0]}")/files}

# Units that cost boot time under TCG and do nothing useful in a disposable VM.
# Gettys go too: root has no password, so a console login could never succeed.
MASKED_UNITS=(
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer
  e2scrub_all.timer e2scrub_reap.service fstrim.timer
  getty.target getty-static.service getty@tty1.service serial-getty@ttyS0.service
  systemd-pstore.service ldconfig.service
)

# Each generator is a process exec before any unit starts, which is slow under TCG.
# fstab (for /root) and debug (systemd.mask= etc. for debugging) stay.
MASKED_GENERATORS=(
  systemd-cryptsetup-generator systemd-getty-generator systemd-gpt-auto-generator
  systemd-hibernate-resume-generator systemd-integritysetup-generator
  systemd-rc-local-generator systemd-run-generator systemd-system-update-generator
  systemd-sysv-generator systemd-veritysetup-generator
)

install_static_files() {
  local root=$1
  # --no-preserve=ownership: the files belong to root in the guest whoever checked them out.
  cp -r --no-preserve=ownership "$DEBIAN_FILES_DIR"/. "$root"/
  chown -R 0:0 "$root/etc/systemd/system" "$root/etc/ssh/sshd_config.d" "$root/usr/local/sbin/banger-net"
  chmod 755 "$root/usr/local/sbin/banger-net"
}

# Every VM must get its own identity: banger injects the ed25519 host key, and an
# empty machine-id makes systemd generate a fresh one on each first boot.
reset_identity() {
  local root=$1
  rm -f "$root"/etc/ssh/ssh_host_*
  install -d -m 755 "$root/etc/ssh/banger"
  : >"$root/etc/machine-id"
  chmod 444 "$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  echo debian >"$root/etc/hostname"
}

enable_unit() {
  local root=$1 unit=$2 target=$3
  mkdir -p "$root/etc/systemd/system/$target.wants"
  ln -sfn "/etc/systemd/system/$unit" "$root/etc/systemd/system/$target.wants/$unit"
}

configure_systemd() {
  local root=$1 u
  ln -sfn /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
  enable_unit "$root" banger-net.service multi-user.target
  enable_unit "$root" banger-net.service network-online.target
  enable_unit "$root" opencode.service multi-user.target
  enable_unit "$root" banger-agent.service multi-user.target
  mkdir -p "$root/etc/systemd/system/ssh.service.wants"
  ln -sfn /etc/systemd/system/banger-hostkey.service "$root/etc/systemd/system/ssh.service.wants/banger-hostkey.service"
  for u in "${MASKED_UNITS[@]}"; do ln -sfn /dev/null "$root/etc/systemd/system/$u"; done
  mkdir -p "$root/etc/systemd/system-generators"
  for u in "${MASKED_GENERATORS[@]}"; do ln -sfn /dev/null "$root/etc/systemd/system-generators/$u"; done
  # Ctrl-Alt-Del stays a reboot (systemd's default; say so in case a base image changed it).
  # Firecracker has no power-off: a halted guest keeps its process alive, and only a reboot
  # ends it. QEMU runs with -no-reboot, so a reboot ends it as well.
  ln -sfn /lib/systemd/system/reboot.target "$root/etc/systemd/system/ctrl-alt-del.target"
  # Keep the kernel's eth0: the ip= argument names the device, and a rename racing
  # banger-net would leave the VM unreachable.
  mkdir -p "$root/etc/systemd/network"
  ln -sfn /dev/null "$root/etc/systemd/network/99-default.link"
}

install_opencode() {
  local root=$1 bin=$2
  install -m 755 -o 0 -g 0 "$bin" "$root/usr/local/bin/opencode"
}

install_modules() {
  local root=$1 modules=$2 kver=$3
  rm -rf "$root/lib/modules/$kver"
  mkdir -p "$root/lib/modules"
  cp -a "$modules" "$root/lib/modules/$kver"
  chown -R 0:0 "$root/lib/modules/$kver"
  timeout 120 chroot "$root" /sbin/depmod -a "$kver" || die "depmod in the guest tree failed"
}

trim_tree() {
  local root=$1
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  rm -f "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
  find "$root/var/log" -type f -delete
  rm -rf "$root"/tmp/* "$root"/var/tmp/*
}

# The initial /root of every VM. It lives on the work disk, not in the rootfs.
build_work_seed_tree() {
  local root=$1 dest=$2
  rm -rf "$dest"
  install -d -m 700 "$dest"
  cp "$root/etc/skel/.bashrc" "$root/etc/skel/.profile" "$dest/"
  install -d -m 700 "$dest/.ssh"
  install -d -m 755 "$dest/.config" "$dest/.config/opencode" "$dest/.local" "$dest/.local/share" \
    "$dest/.local/share/opencode" "$dest/.cache"
  chown -R 0:0 "$dest"
}

configure_rootfs() {
  local root=$1 opencode_bin=$2 modules=$3 kver=$4 agent_bin=$5
  install_static_files "$root"
  install_agent "$root" "$agent_bin"
  reset_identity "$root"
  configure_systemd "$root"
  install_opencode "$root" "$opencode_bin"
  install_modules "$root" "$modules" "$kver"
  trim_tree "$root"
  # /root is only a mount point for the work disk.
  find "$root/root" -mindepth 1 -delete
  chmod 700 "$root/root"
}
