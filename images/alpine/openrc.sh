# Turn an Alpine tree (minirootfs + packages) into the banger guest, by writing files
# only: no service is started and no package script runs at boot. Source it after
# images/lib/common.sh and images/lib/agent.sh; it defines functions only, so tests can run them on a
# synthetic tree.

ALPINE_FILES_DIR=${ALPINE_FILES_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/files}
# Shared with the Debian image: the ip= applier and the sshd policy.
DEBIAN_FILES_DIR=${DEBIAN_FILES_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../debian/files" && pwd)}

# runlevel -> services. sysinit/boot are the minimum a VM with devtmpfs already
# mounted by the initramfs needs; `networking` runs banger-net through ifupdown-ng.
OPENRC_SYSINIT=(sysfs devfs dmesg)
OPENRC_BOOT=(hostname bootmisc localmount networking)
OPENRC_DEFAULT=(banger-agent banger-hostkey sshd opencode)
OPENRC_SHUTDOWN=(killprocs mount-ro savecache)

# Runlevel membership is a symlink /etc/runlevels/<level>/<svc> -> /etc/init.d/<svc>;
# that is all `rc-update add` does, so doing it here needs no chroot.
openrc_enable() {
  local root=$1 level=$2 svc=$3
  [ -e "$root/etc/init.d/$svc" ] || die "OpenRC service $svc has no /etc/init.d/$svc in $root"
  mkdir -p "$root/etc/runlevels/$level"
  ln -sfn "/etc/init.d/$svc" "$root/etc/runlevels/$level/$svc"
}

seed_runlevels() {
  local root=$1 s
  for s in "${OPENRC_SYSINIT[@]}"; do openrc_enable "$root" sysinit "$s"; done
  for s in "${OPENRC_BOOT[@]}"; do openrc_enable "$root" boot "$s"; done
  for s in "${OPENRC_DEFAULT[@]}"; do openrc_enable "$root" default "$s"; done
  for s in "${OPENRC_SHUTDOWN[@]}"; do openrc_enable "$root" shutdown "$s"; done
  mkdir -p "$root/etc/runlevels/nonetwork"
}

install_guest_files() {
  local root=$1
  cp -r --no-preserve=ownership "$ALPINE_FILES_DIR"/. "$root"/
  install -D -m 755 -o 0 -g 0 "$DEBIAN_FILES_DIR/usr/local/sbin/banger-net" "$root/usr/local/sbin/banger-net"
  install -D -m 644 -o 0 -g 0 "$DEBIAN_FILES_DIR/etc/ssh/sshd_config.d/banger.conf" "$root/etc/ssh/sshd_config.d/banger.conf"
  install -D -m 644 -o 0 -g 0 "$DEBIAN_FILES_DIR/etc/resolv.conf" "$root/etc/resolv.conf"
  chown -R 0:0 "$root/etc/init.d" "$root/etc/conf.d" "$root/etc/network" "$root/etc/fstab" "$root/etc/inittab"
  chmod 755 "$root/etc/init.d/opencode" "$root/etc/init.d/banger-hostkey" "$root/etc/init.d/banger-agent"
}

# Every VM gets its own identity: banger injects the ed25519 host key and writes the
# hostname; the image itself ships no host keys.
reset_identity() {
  local root=$1
  rm -f "$root"/etc/ssh/ssh_host_*
  install -d -m 755 "$root/etc/ssh/banger"
  echo alpine >"$root/etc/hostname"
  printf '127.0.0.1\tlocalhost localhost.localdomain\n::1\t\tlocalhost localhost.localdomain\n' >"$root/etc/hosts"
  : >"$root/etc/machine-id"
}

install_opencode() {
  local root=$1 bin=$2
  install -D -m 755 -o 0 -g 0 "$bin" "$root/usr/local/bin/opencode"
}

# The initial /root of every VM; it lives on the work disk, not in the rootfs.
build_work_seed_tree() {
  local dest=$1
  rm -rf "$dest"
  install -d -m 700 "$dest" "$dest/.ssh"
  install -d -m 755 "$dest/.config" "$dest/.config/opencode" "$dest/.local" "$dest/.local/share" \
    "$dest/.local/share/opencode" "$dest/.cache"
  printf '# banger guest (Alpine): ash is the login shell\nexport PS1='"'"'\\h:\\w\\$ '"'"'\n' >"$dest/.profile"
  chown -R 0:0 "$dest"
}

trim_tree() {
  local root=$1
  rm -rf "$root"/var/cache/apk/* "$root"/tmp/* "$root"/var/tmp/*
  find "$root/var/log" -type f -delete 2>/dev/null || true
  find "$root/root" -mindepth 1 -delete
  chmod 700 "$root/root"
}

configure_alpine_rootfs() {
  local root=$1 opencode_bin=$2 agent_bin=$3
  install_guest_files "$root"
  install_agent "$root" "$agent_bin"
  reset_identity "$root"
  seed_runlevels "$root"
  install_opencode "$root" "$opencode_bin"
  trim_tree "$root"
}
