#!/usr/bin/env bash
# Leak verifier: VMM processes, TAPs, leases, VM dirs, nft elements (NAT, peers), port-forward
# listeners and sockets that no VM owns.
# Uses the config banger uses (--config, BANGER_CONFIG or the default); run it in the network
# namespace bangerd runs in. `--all-test-namespaces` checks that tests left no namespace or VMM.
# Exit 0 when clean, 1 with the list otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$here/build/runtime/tools/verify.js" ] || make -C "$here" build >/dev/null
exec node "$here/build/runtime/tools/verify.js" "$@"
