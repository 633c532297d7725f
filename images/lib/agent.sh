# banger-agent (guest/agent, docs/agent.md) for every image: built from this repository's
# source with Debian's musl-gcc at image-build time, static, so one file serves Debian, Alpine
# and Void alike. Source it after common.sh; it defines functions only.

# Prints the path of a freshly built agent. `make agent` holds the one set of compiler flags and
# rebuilds only when guest/agent changed.
build_agent() {
  local repo=$1 bin
  command -v musl-gcc >/dev/null 2>&1 || die "musl-gcc is missing: apt-get install musl-tools (scripts/host-deps.sh)"
  timeout 300 make -C "$repo" --no-print-directory -s agent >&2 || die "building banger-agent (make agent) failed"
  bin="$repo/build/agent/banger-agent"
  # A static binary runs on the build host too: prove it is one and that it starts.
  "$bin" --help >/dev/null || die "$bin does not run"
  file_is_static "$bin" || die "$bin is not statically linked"
  echo "$bin"
}

# A dynamic executable names its loader in a PT_INTERP header.
file_is_static() { ! timeout 30 readelf -lW "$1" | grep -q INTERP; }

# Root-only: it runs every verb as root, and only bangerd reaches it.
install_agent() {
  local root=$1 bin=$2
  install -D -m 755 -o 0 -g 0 "$bin" "$root/usr/local/sbin/banger-agent"
}
