#!/bin/bash
# Boot a built Debian image with plain QEMU microvm (TCG) the way banger would, and
# check the guest contract over SSH. Needs root (netns, tap).
#
#   bash images/debian/smoke.sh [IMAGE_DIR] [RUNS]      (default build/images/debian/latest, 1)
#
# Per run: fresh copies of rootfs.ext4 / work-seed.ext4, a throwaway ed25519 host key
# and client key injected with debugfs (like `banger vm create`), a private netns
# banger-t-<random> with a bridge + tap, deleted on exit. Prints boot -> SSH and
# boot -> opencode-listening times. Exit status 0 only if every check passed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
IMG=$(realpath "${1:-$REPO/build/images/debian/latest}")
RUNS=${2:-1}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-180}
SMP=${SMP:-2}
MEM=${MEM:-1024}
GUEST_IP=172.31.250.2 GW_IP=172.31.250.1

fail() { printf 'smoke: FAIL: %s\n' "$*" >&2; FAILED=1; }
die() { printf 'smoke: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespace + tap)"
for f in vmlinux initramfs.cpio.gz rootfs.ext4 work-seed.ext4; do
  [ -s "$IMG/$f" ] || die "$IMG/$f missing; run make image-debian first"
done
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not installed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/banger-smoke.XXXXXX")
NS="banger-t-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
QPID=
cleanup() {
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; fi
  ip netns del "$NS" 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] && echo "smoke: kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
# Turn a kill into a normal exit so the EXIT trap still deletes the netns.
trap 'exit 143' TERM INT

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# Same mechanism as the daemon's DiskService.inject: debugfs, rm-then-write, set mode/owner.
inject() {
  local img=$1 src=$2 dst=$3 mode=$4
  printf 'rm %s\nwrite %s %s\nset_inode_field %s mode 0100%s\nset_inode_field %s uid 0\nset_inode_field %s gid 0\n' \
    "$dst" "$src" "$dst" "$dst" "$mode" "$dst" "$dst" >>"$TMP/inject.cmds"
}

prepare_disks() {
  local hostname=$1
  cp --sparse=always "$IMG/rootfs.ext4" "$TMP/vda.ext4"
  cp --sparse=always "$IMG/work-seed.ext4" "$TMP/vdb.ext4"
  truncate -s 1G "$TMP/vdb.ext4"
  resize2fs -f "$TMP/vdb.ext4" >/dev/null 2>&1
  rm -f "$TMP"/hostkey* "$TMP"/client* "$TMP/inject.cmds"
  ssh-keygen -q -t ed25519 -N '' -f "$TMP/hostkey" -C smoke-host
  ssh-keygen -q -t ed25519 -N '' -f "$TMP/client" -C smoke-client
  echo "$hostname" >"$TMP/hostname"
  inject "$TMP/vda.ext4" "$TMP/hostkey" /etc/ssh/ssh_host_ed25519_key 600
  inject "$TMP/vda.ext4" "$TMP/hostkey.pub" /etc/ssh/ssh_host_ed25519_key.pub 644
  inject "$TMP/vda.ext4" "$TMP/client.pub" /etc/ssh/banger/authorized_keys 644
  # opencode starts only with its per-VM password file, as banger writes it at create.
  OC_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  printf 'OPENCODE_SERVER_PASSWORD=%s\n' "$OC_PASSWORD" >"$TMP/opencode.env"
  echo "mkdir /etc/banger" >>"$TMP/inject.cmds"
  inject "$TMP/vda.ext4" "$TMP/opencode.env" /etc/banger/opencode.env 600
  DEBUGFS_PAGER=__none__ timeout 30 debugfs -w -f "$TMP/inject.cmds" "$TMP/vda.ext4" >"$TMP/debugfs.log" 2>&1
  if grep -E 'Could not|not found|No such' "$TMP/debugfs.log" | grep -v "rm: File not found" | grep -q .; then
    cat "$TMP/debugfs.log" >&2; die "debugfs injection failed"
  fi
  echo "$GUEST_IP $(cut -d' ' -f1,2 "$TMP/hostkey.pub")" >"$TMP/known_hosts"
}

setup_netns() {
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" link add br0 type bridge
  ip -n "$NS" addr add "$GW_IP/24" dev br0
  ip -n "$NS" link set br0 up
  ip -n "$NS" tuntap add dev tap0 mode tap
  ip -n "$NS" link set tap0 master br0
  ip -n "$NS" link set tap0 up
}

ssh_once() {
  ip netns exec "$NS" timeout "${SSH_TIMEOUT:-60}" ssh -i "$TMP/client" -o UserKnownHostsFile="$TMP/known_hosts" \
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout="$1" -o LogLevel=ERROR "root@$GUEST_IP" "${@:2}"
}

# A TCG guest on a busy host can miss one banner exchange; ssh exits 255 for that, so
# retry those (never a command's own failure).
ssh_guest() {
  local rc=0
  ssh_once 15 "$@" || rc=$?
  [ "$rc" = 255 ] || return "$rc"
  sleep 1
  ssh_once 30 "$@"
}

port_open() {
  ip netns exec "$NS" timeout 3 bash -c "exec 3<>/dev/tcp/$GUEST_IP/$1" 2>/dev/null
}

start_qemu() {
  local hostname=$1 tsc
  tsc=$(awk -F: '/^cpu MHz/{printf "%d", $2*1000; exit}' /proc/cpuinfo)
  ip netns exec "$NS" qemu-system-x86_64 -M microvm,acpi=on -accel tcg,tb-size=64,thread=multi -cpu max \
    -smp "$SMP" -m "$MEM" -nodefaults -no-user-config -display none -no-reboot \
    -kernel "$IMG/vmlinux" -initrd "$IMG/initramfs.cpio.gz" \
    -append "console=ttyS0 reboot=k panic=1 rootfstype=ext4 root=/dev/vda rw tsc_early_khz=$tsc ip=$GUEST_IP::$GW_IP:255.255.255.0:$hostname:eth0:off" \
    -drive id=vda,file="$TMP/vda.ext4",format=raw,if=none -device virtio-blk-device,drive=vda \
    -drive id=vdb,file="$TMP/vdb.ext4",format=raw,if=none -device virtio-blk-device,drive=vdb \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0,mac=02:fc:00:00:00:02 \
    -serial file:"$TMP/serial.log" >"$TMP/qemu.log" 2>&1 &
  QPID=$!
}

# Poll SSH and the opencode port independently: they come up in either order.
wait_guest() {
  local t0=$1 deadline
  SSH_AT= OC_AT=
  deadline=$(( $(date +%s) + BOOT_TIMEOUT ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$QPID" 2>/dev/null || { tail -20 "$TMP/serial.log" >&2; die "qemu exited during boot"; }
    [ -n "$SSH_AT" ] || { port_open 22 && ssh_once 3 true 2>/dev/null && SSH_AT=$(since "$t0"); } || true
    [ -n "$OC_AT" ] || { port_open 4096 && OC_AT=$(since "$t0"); } || true
    [ -n "$SSH_AT" ] && [ -n "$OC_AT" ] && return 0
    sleep 0.2
  done
  tail -30 "$TMP/serial.log" >&2
  die "guest not ready after ${BOOT_TIMEOUT}s (ssh at ${SSH_AT:-never}, opencode at ${OC_AT:-never})"
}

expect() {
  local what=$1 got=$2 want=$3
  if [ "$got" = "$want" ]; then echo "  ok   $what: $got"; else fail "$what: got '$got', want '$want'"; fi
}

check_guest() {
  local hostname=$1 out
  expect hostname "$(ssh_guest hostname)" "$hostname"
  expect "/root source" "$(ssh_guest findmnt -no SOURCE /root)" /dev/vdb
  expect "/ source" "$(ssh_guest findmnt -no SOURCE /)" /dev/vda
  expect "work-seed files" "$(ssh_guest 'ls -d /root/.bashrc /root/.profile /root/.ssh /root/.config/opencode /root/.local/share/opencode /root/.cache | wc -l')" 6
  expect "eth0 address" "$(ssh_guest "ip -4 -o addr show dev eth0 | awk '{print \$4}'")" "$GUEST_IP/24"
  expect "default route" "$(ssh_guest "ip route show default | awk '{print \$3}'")" "$GW_IP"
  expect "/etc/hosts" "$(ssh_guest "awk '\$1==\"127.0.1.1\"{print \$2}' /etc/hosts")" "$hostname"
  expect "opencode active" "$(ssh_guest systemctl is-active opencode)" active
  expect "ssh active" "$(ssh_guest systemctl is-active ssh)" active
  expect "failed units" "$(ssh_guest systemctl --failed --plain --no-legend | wc -l)" 0
  expect "host keys in guest" "$(ssh_guest 'ls /etc/ssh/ | grep -c "^ssh_host_.*_key$"')" 1
  expect "machine-id set" "$(ssh_guest 'test -s /etc/machine-id && echo yes')" yes
  out=$(ssh_guest 'systemctl list-jobs --no-legend | wc -l')
  expect "pending jobs" "$out" 0
  # The first request after a cold start is slow under TCG.
  local auth
  auth=$(printf 'opencode:%s' "$OC_PASSWORD" | base64 -w0)
  ip netns exec "$NS" timeout 60 bash -c "exec 3<>/dev/tcp/$GUEST_IP/4096; printf 'GET /config HTTP/1.1\r\nHost: x\r\nAuthorization: Basic $auth\r\nConnection: close\r\n\r\n' >&3; head -1 <&3" >"$TMP/http" 2>/dev/null || true
  expect "opencode GET /config" "$(grep -o 'HTTP/1.1 [0-9]*' "$TMP/http")" "HTTP/1.1 200"
  ip netns exec "$NS" timeout 60 bash -c "exec 3<>/dev/tcp/$GUEST_IP/4096; printf 'GET /config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3; head -1 <&3" >"$TMP/http" 2>/dev/null || true
  expect "opencode without the password" "$(grep -o 'HTTP/1.1 [0-9]*' "$TMP/http")" "HTTP/1.1 401"
  [ -z "${SMOKE_DEBUG:-}" ] || SSH_TIMEOUT=300 ssh_guest "$SMOKE_DEBUG" || true
  echo "  info $(ssh_guest 'systemd-analyze 2>/dev/null | head -1' || true)"
  echo "  info slowest units: $(ssh_guest 'systemd-analyze blame 2>/dev/null | head -5 | tr -s " " | paste -sd";"' || true)"
}

shutdown_guest() {
  ssh_guest systemctl poweroff >/dev/null 2>&1 || true
  local i
  for i in $(seq 1 300); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$QPID" 2>/dev/null; then fail "guest did not power off within 60 s"; kill "$QPID"; fi
  wait "$QPID" 2>/dev/null || true
  QPID=
}

# Debugging aid: keep the VM up until $TMP/release exists (or 30 min pass).
hold_guest() {
  echo "smoke: holding; ssh with: ip netns exec $NS ssh -i $TMP/client -o UserKnownHostsFile=$TMP/known_hosts root@$GUEST_IP"
  echo "smoke: release with: touch $TMP/release"
  local i
  for i in $(seq 1 1800); do [ -e "$TMP/release" ] && break; kill -0 "$QPID" 2>/dev/null || break; sleep 1; done
}

FAILED=0
setup_netns
echo "smoke: image $IMG, netns $NS, $RUNS run(s), -smp $SMP -m $MEM"
for run in $(seq 1 "$RUNS"); do
  host="smoke-$run-$(head -c2 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  prepare_disks "$host"
  t0=$(now)
  start_qemu "$host"
  wait_guest "$t0"
  echo "run $run: ssh after ${SSH_AT}s, opencode listening after ${OC_AT}s (from qemu start)"
  check_guest "$host"
  [ "${SMOKE_HOLD:-0}" = 1 ] && hold_guest
  shutdown_guest
done
[ "$FAILED" = 0 ] && echo "smoke: all checks passed" || { echo "smoke: some checks FAILED"; exit 1; }
