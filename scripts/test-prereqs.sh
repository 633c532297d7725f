#!/usr/bin/env bash
# Run by `make test` before the suite. As root on a fresh machine it does what .ci/run does:
# installs the host packages and builds the Debian guest image when none is built, so the
# e2e tests boot real guests instead of skipping. Without root it changes nothing; the tests
# that need root, namespaces or QEMU skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "test prerequisites: not root, so nothing is installed; root-only tests will skip with the reason"
  exit 0
fi
bash scripts/host-deps.sh
if ! ls build/images/debian/*/manifest.json >/dev/null 2>&1; then
  echo "test prerequisites: no Debian guest image yet; building it (make image-debian)"
  BANGER_NO_REGISTER=1 make image-debian
fi
# The local apt repository the image-build e2e test serves to its guest (jq and its dependencies).
bash scripts/apt-test-repo.sh
