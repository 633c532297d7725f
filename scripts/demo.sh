#!/usr/bin/env bash
# The main job: build the Debian image, start bangerd, create a VM and show it answering.
# bangerd runs inside its own network namespace (banger-demo) so the host's interfaces, routes
# and firewall are never touched. `scripts/demo.sh --clean` undoes everything.
#
# Which image: DEMO_IMAGE=debian (the default: needs only the Debian archive and npm) or
# DEMO_IMAGE=alpine (make demo DEMO_IMAGE=alpine [MIRROR=DIR|URL] [KERNEL_FROM=debian]; it
# needs Alpine's CDN or a local mirror, which a fresh offline host does not have).
set -euo pipefail
cd "$(dirname "$0")/.."
NS=banger-demo
DEMO=$PWD/build/demo
# Under /var/lib, not the clone: the VMM runs as banger-vmm, which must pass through every directory
# above the state dir (a clone under /root would not let it).
STATE=/var/lib/banger-demo
export BANGER_CONFIG=$DEMO/config.toml
BANGER=$PWD/build/bin/banger
in_ns() { ip netns exec "$NS" "$@"; }
IMAGE=${DEMO_IMAGE:-debian}
case "$IMAGE" in debian | alpine) ;; *) echo "demo: DEMO_IMAGE must be debian or alpine, not $IMAGE"; exit 2 ;; esac
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "demo: needs root (network namespace, bridge, TAP devices)"; exit 1
fi

if [ "${1:-}" = "--clean" ]; then
  if [ -f "$BANGER_CONFIG" ]; then
    in_ns "$BANGER" vm rm demo --force 2>/dev/null || true
    "$BANGER" daemon stop || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DEMO" "$STATE"
  # banger-vmm and the banger group stay: bangerd made them for every later start (docs/security-host.md).
  echo "demo cleaned up"; exit 0
fi

say "host packages"
bash scripts/host-deps.sh

say "config ($BANGER_CONFIG)"
mkdir -p "$DEMO"
vmm=qemu; command -v firecracker >/dev/null && vmm=firecracker
cat > "$BANGER_CONFIG" <<TOML
# Written by scripts/demo.sh; see docs/config.md.
vmm = "$vmm"
state_dir = "$STATE"
socket = "$DEMO/bangerd.sock"
tap_pool_size = 2
[web]
listen = ""
TOML
cat "$BANGER_CONFIG"

say "network namespace $NS"
ip netns add "$NS" 2>/dev/null || true
in_ns ip link set lo up

say "bangerd"
in_ns "$BANGER" daemon start

say "Debian image (make image-debian)"
bash images/debian/build.sh
if [ "$IMAGE" = alpine ]; then
  say "Alpine image (make image-alpine${MIRROR:+ MIRROR=$MIRROR}${KERNEL_FROM:+ KERNEL_FROM=$KERNEL_FROM})"
  bash images/alpine/build.sh all ${MIRROR:+--mirror "$MIRROR"} ${KERNEL_FROM:+--kernel-from "$KERNEL_FROM"}
fi

say "doctor"
"$BANGER" doctor || echo "(doctor reported failures above; continuing)"

say "vm create --image $IMAGE --name demo"
in_ns "$BANGER" vm rm demo --force >/dev/null 2>&1 || true
in_ns "$BANGER" vm create --image "$IMAGE" --name demo

say "least privilege: set up by bangerd at start, checked here"
# bangerd (root) created banger-vmm and the banger group and granted the devices itself; no doctor --fix.
"$BANGER" --json doctor >"$DEMO/doctor.json" || true
"$BANGER" --json vm show demo >"$DEMO/vm.json"
python3 - "$DEMO/doctor.json" "$DEMO/vm.json" <<'PY'
import json, sys
checks = {c["name"]: c for c in json.load(open(sys.argv[1]))["checks"]}
bad = []
for name in ("vmm-user", "api-group"):
    c = checks.get(name, {"status": "missing", "detail": ""})
    print(f"doctor {name}: {c['status']}  {c['detail']}")
    if c["status"] != "PASS":
        bad.append(f"doctor {name} is {c['status']}: {c['detail']} (fix: {c.get('fix', '-')})")
pid = json.load(open(sys.argv[2]))["vm"]["pid"]
status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
uids = status["Uid"].split()
cap = status["CapEff"].strip()
print(f"VMM pid {pid}: Uid {' '.join(uids)}  CapEff {cap}  NoNewPrivs {status['NoNewPrivs'].strip()}")
if "0" in uids:
    bad.append(f"the demo VM's VMM (pid {pid}) runs with uid 0")
if cap != "0000000000000000":
    bad.append(f"the demo VM's VMM (pid {pid}) has capabilities: CapEff {cap}")
if bad:
    sys.exit("demo: least privilege is NOT in effect:\n  " + "\n  ".join(bad))
print("the VMM runs unprivileged, with no capabilities")
PY

say "the VM answers over SSH"
# Plain POSIX sh: the same line works on Debian (systemd) and Alpine (OpenRC, busybox).
in_ns "$BANGER" vm ssh demo -- 'echo "hostname: $(hostname)"; echo "os:       $(. /etc/os-release; echo "$PRETTY_NAME")"; echo "kernel:   $(uname -r)"; echo "/root on: $(awk '"'"'$2=="/root"{print $1}'"'"' /proc/mounts)"; echo "opencode: $(systemctl is-active opencode 2>/dev/null || rc-service opencode status 2>/dev/null | sed "s/.*: //")"'

say "opencode answers from the host, with the VM's own password only"
# The IP and the per-VM opencode password (root-only; docs/security-host.md, "Secrets").
(umask 077 && "$BANGER" --json vm show demo --show-secret >"$DEMO/show.json")
trap 'rm -f "$DEMO/show.json"' EXIT
in_ns python3 - "$DEMO/show.json" <<'PY'
# opencode listens before it finishes initialising; under TCG its first answer can take minutes.
import base64, json, sys, time, urllib.error, urllib.request
show = json.load(open(sys.argv[1]))
oc = next(s for s in show["services"] if s["service"] == "opencode")
url = f"http://{show['vm']['ip']}:4096/config"
auth = "Basic " + base64.b64encode(f"{oc['username']}:{oc['password']}".encode()).decode()
def status(headers):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
t0 = time.time()
while True:
    try:
        code = status({"Authorization": auth})
        if code == 200:
            print(f"GET {url} with the password -> HTTP 200 after {time.time() - t0:.0f} s")
            break
    except Exception as e:
        code = e
    if time.time() - t0 > 300:
        sys.exit(f"opencode did not answer {url} within 300 s: {code}")
    time.sleep(2)
code = status({})
print(f"GET {url} without it -> HTTP {code}")
if code != 401:
    sys.exit("opencode answered without the password")
PY

say "vm show demo"
"$BANGER" vm show demo

cat <<EOF2

The VM keeps running. Try:
  ip netns exec $NS $BANGER vm ssh demo          # a shell in the guest
  BANGER_CONFIG=$BANGER_CONFIG $BANGER vm ls
  make demo-clean                                 # remove the VM, stop bangerd, delete the namespace
EOF2
