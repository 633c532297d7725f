# runit service directories for the Void guest, written into a tree (no chroot, no
# running services). Source it after images/lib/common.sh and images/lib/agent.sh; functions only.

DEBIAN_FILES_DIR=${DEBIAN_FILES_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../debian/files" && pwd)}
VOID_SERVICES=(banger-agent banger-net banger-sshd opencode agetty-ttyS0)

# $1=root $2=service $3=run script text. runsv runs ./run and restarts it when it exits.
write_sv() {
  local root=$1 name=$2 text=$3
  install -d -m 755 "$root/etc/sv/$name"
  printf '%s\n' "$text" >"$root/etc/sv/$name/run"
  chmod 755 "$root/etc/sv/$name/run"
}

write_void_services() {
  local root=$1
  # runsv restarts it whenever it exits (a transport died); it needs no network.
  write_sv "$root" banger-agent '#!/bin/sh
# banger-agent (docs/agent.md): the guest channel, readiness and re-identity.
exec /usr/local/sbin/banger-agent 2>&1'
  # A one-shot as a runit service: apply ip= once, then idle so runsv does not rerun it.
  # `sv check banger-net` is how the others wait for it.
  write_sv "$root" banger-net '#!/bin/sh
# The kernel ip= argument, applied by the same script as the Debian and Alpine images.
/usr/local/sbin/banger-net || exit 1
exec pause'
  # Not Void'"'"'s own sshd service: its run script makes every key type on each start.
  write_sv "$root" banger-sshd '#!/bin/sh
sv check banger-net >/dev/null || exit 1
# banger injects the ed25519 host key; generate one only when booted by hand.
[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
exec /usr/bin/sshd -D -e'
  write_sv "$root" opencode '#!/bin/sh
sv check banger-net >/dev/null || exit 1
# /root is the per-VM work disk; opencode keeps its state there.
mountpoint -q /root || exit 1
export HOME=/root
# OPENCODE_SERVER_PASSWORD, written by banger at create (root-only); no file, no server.
[ -r /etc/banger/opencode.env ] || exit 1
set -a; . /etc/banger/opencode.env; set +a
cd /root || exit 1
exec /usr/local/bin/opencode serve --port 4096 --hostname 0.0.0.0 2>&1'
}

# Enabling = a symlink in the default runsvdir, which is all `ln -s /etc/sv/x /var/service` does at run time.
enable_void_services() {
  local root=$1 s
  install -d -m 755 "$root/etc/runit/runsvdir/default"
  for s in "${VOID_SERVICES[@]}"; do
    [ -d "$root/etc/sv/$s" ] || die "runit service $s has no /etc/sv/$s in $root"
    ln -sfn "/etc/sv/$s" "$root/etc/runit/runsvdir/default/$s"
  done
  rm -f "$root/etc/runit/runsvdir/default/sshd"
}

configure_void_rootfs() {
  local root=$1 opencode_bin=$2 agent_bin=$3
  install_agent "$root" "$agent_bin"
  install -D -m 755 "$DEBIAN_FILES_DIR/usr/local/sbin/banger-net" "$root/usr/local/sbin/banger-net"
  install -D -m 644 "$DEBIAN_FILES_DIR/etc/ssh/sshd_config.d/banger.conf" "$root/etc/ssh/sshd_config.d/banger.conf"
  grep -qs '^Include /etc/ssh/sshd_config.d/\*.conf' "$root/etc/ssh/sshd_config" ||
    { printf 'Include /etc/ssh/sshd_config.d/*.conf\n'; cat "$root/etc/ssh/sshd_config" 2>/dev/null; } >"$root/etc/ssh/sshd_config.new"
  [ ! -f "$root/etc/ssh/sshd_config.new" ] || mv "$root/etc/ssh/sshd_config.new" "$root/etc/ssh/sshd_config"
  install -d -m 755 "$root/etc/ssh/banger"
  rm -f "$root"/etc/ssh/ssh_host_*
  printf '/dev/vda / ext4 defaults,noatime 0 0\n/dev/vdb /root ext4 defaults,noatime,nofail 0 0\n' >"$root/etc/fstab"
  echo void >"$root/etc/hostname"
  write_void_services "$root"
  enable_void_services "$root"
  install -D -m 755 "$opencode_bin" "$root/usr/local/bin/opencode"
  find "$root/root" -mindepth 1 -delete 2>/dev/null || true
}
