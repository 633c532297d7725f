#!/usr/bin/env bash
# A flat apt repository with jq and its dependencies, for test/e2e/image-build.test.ts: the
# test serves it from an upstream network namespace so the guest's `apt-get install -y jq`
# never leaves the machine. Debian 12 packages from the host's own apt sources, as the guest
# image is Debian 12 too. Idempotent: an existing complete repository is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build/cache/apt-test-repo
PKGS=(jq libjq1 libonig5)
[ -f "$dir/Release" ] && exit 0
command -v dpkg-scanpackages >/dev/null || { echo "apt test repo: needs dpkg-scanpackages (apt-get install dpkg-dev)"; exit 1; }
tmp="$dir.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
(
  cd "$tmp"
  # apt-get download as root cannot drop to _apt in a directory _apt cannot write; harmless here.
  timeout 300 apt-get download "${PKGS[@]}" 2>/dev/null || { timeout 300 apt-get update -qq && timeout 300 apt-get download "${PKGS[@]}"; }
  dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages
  gzip -9kn Packages
  {
    echo "Origin: banger-test"
    echo "Label: banger-test"
    echo "Date: $(date -Ru)"
    echo "SHA256:"
    for f in Packages Packages.gz; do echo " $(sha256sum "$f" | cut -d' ' -f1) $(stat -c %s "$f") $f"; done
  } >Release
)
rm -rf "$dir"
mv "$tmp" "$dir"
echo "apt test repo: $(ls "$dir"/*.deb | wc -l) packages in $dir"
