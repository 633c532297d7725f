#!/usr/bin/env bash
# Installs the Debian packages banger needs on the host (idempotent; skips apt when all are present).
# Used by .ci/run and scripts/demo.sh.
set -euo pipefail
# tmux, zsh and fish only for the tests of `banger top` and the completion scripts; docker-registry
# (the CNCF distribution registry) only for the image store tests; musl-tools builds banger-agent.
PKGS=(qemu-system-x86 debootstrap busybox-static e2fsprogs cpio lz4 zstd xz-utils iproute2 nftables
      openssh-client openssh-server socat file python3 ca-certificates kmod dpkg-dev
      chromium curl acl tmux zsh fish docker-registry musl-tools)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "host packages: all present"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"; exit 1; }
echo "host packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
