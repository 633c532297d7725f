#!/bin/bash
# Fetch the prebuilt opencode binary from npm (the per-platform package the
# `opencode-ai` wrapper would pick at install time) and cache it.
#
#   bash images/lib/opencode.sh VERSION CACHE_DIR     -> prints the path of the cached binary
#
# The tarball is kept as CACHE_DIR/<package>-VERSION.tgz and unpacked next to it; a
# second call with the same version does no network access. OPENCODE_PKG picks the
# build: opencode-linux-x64 (glibc, Debian) or opencode-linux-x64-musl (Alpine).
set -euo pipefail

VERSION=${1:?usage: opencode.sh VERSION CACHE_DIR}
CACHE=${2:?usage: opencode.sh VERSION CACHE_DIR}
PKG=${OPENCODE_PKG:-opencode-linux-x64}
NPM_TIMEOUT=${NPM_TIMEOUT:-300}

die() { printf 'opencode: error: %s\n' "$*" >&2; exit 1; }

tgz="$CACHE/$PKG-$VERSION.tgz"
dir="$CACHE/$PKG-$VERSION"
mkdir -p "$CACHE"

if [ ! -s "$tgz" ]; then
  command -v npm >/dev/null || die "npm is not installed (apt-get install npm, or put the tarball at $tgz)"
  tmp=$(mktemp -d "$CACHE/.npm-pack.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && timeout "$NPM_TIMEOUT" npm pack --silent "$PKG@$VERSION" >/dev/null) ||
    die "npm pack $PKG@$VERSION failed; check the npm registry is reachable and the version exists (npm view $PKG versions)"
  mv "$tmp/$PKG-$VERSION.tgz" "$tgz"
fi

if [ ! -x "$dir/bin/opencode" ]; then
  rm -rf "$dir" "$dir.partial"
  mkdir -p "$dir.partial"
  tar -xzf "$tgz" -C "$dir.partial" --strip-components=1 --no-same-owner
  [ -x "$dir.partial/bin/opencode" ] || die "$tgz has no executable package/bin/opencode"
  mv "$dir.partial" "$dir"
fi
printf '%s\n' "$dir/bin/opencode"
