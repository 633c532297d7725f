# banger — see README.md. Generated output stays under build/.
SHELL := /bin/bash
NODE ?= node
# A 1 MiB young generation instead of up to 16 MiB: bangerd allocates little, and the larger
# one only held garbage. No optimising or baseline compilers and V8's size-over-speed choices
# (--no-opt --no-maglev --no-sparkplug --optimize-for-size): ~5 MiB less resident idle, more with
# many VMs, for a few per cent more server time per request; unlike --lite-mode it keeps
# WebAssembly, which Node's fetch() needs (docs/architecture.md, "CLI and daemon footprint").
BANGERD_NODE_FLAGS := --max-semi-space-size=1 --no-opt --no-maglev --no-sparkplug --optimize-for-size

.PHONY: all agent build lint test-prereqs test test-unit test-integration test-e2e dist image-debian alpine-kernel alpine-rootfs alpine-register image-alpine bench-create bench-stop bench-cli bench-build bench-channel bench-web bench-cluster demo demo-clean clean

all: build

node_modules/.package-lock.json: package-lock.json
	npm ci
	@touch $@

# tsc type-checks and emits build/runtime (the fake Firecracker and verify.sh use modules from it);
# banger and bangerd run from the esbuild bundles in build/bundle (scripts/bundle/bundle.mjs).
# bangerd's node flags are also in bin/bangerd.js and src/cli/commands/daemon.ts.
build: node_modules/.package-lock.json agent
	npx tsc -p tsconfig.json
	node scripts/bundle/bundle.mjs
	node scripts/bundle/ui.mjs
	@mkdir -p build/bin
	@printf '#!/bin/sh\nexec node "%s/build/bundle/banger.cjs" "$$@"\n' "$(CURDIR)" > build/bin/banger
	@printf '#!/bin/sh\nexec node $(BANGERD_NODE_FLAGS) "%s/build/bundle/bangerd.js" "$$@"\n' "$(CURDIR)" > build/bin/bangerd
	@printf '#!/bin/sh\nexec node "%s/build/bundle/banger-vsock.cjs" "$$@"\n' "$(CURDIR)" > build/bin/banger-vsock
	@printf '#!/bin/sh\nexec node "%s/build/bundle/banger-k8s.js" "$$@"\n' "$(CURDIR)" > build/bin/banger-k8s
	@chmod +x build/bin/banger build/bin/bangerd build/bin/banger-vsock build/bin/banger-k8s

# The guest agent (guest/agent, docs/agent.md): static, so it runs on any image's libc or none.
AGENT_SRC := $(wildcard guest/agent/*.c guest/agent/*.h)
AGENT_CC ?= musl-gcc
agent: build/agent/banger-agent
build/agent/banger-agent: $(AGENT_SRC)
	@command -v $(AGENT_CC) >/dev/null || { echo "$(AGENT_CC) missing: apt-get install musl-tools (scripts/host-deps.sh)"; exit 1; }
	@mkdir -p build/agent
	$(AGENT_CC) -static -Os -Wall -Wextra -Werror -std=c11 -o $@ $(filter %.c,$(AGENT_SRC))
	strip $@

# Type-check everything (tests, bench, image tooling too), type-aware lint, formatting, and the
# layering rules in .dependency-cruiser.cjs (no cycles, app only through ports).
lint: node_modules/.package-lock.json
	npx tsc -p tsconfig.lint.json
	npx eslint .
	npx prettier --check .
	npx depcruise src --config .dependency-cruiser.cjs

# As root: host packages and the Debian guest image when missing (scripts/test-prereqs.sh).
test-prereqs: build
	bash scripts/test-prereqs.sh

test: build test-prereqs
	npx vitest run

test-unit: build
	npx vitest run test/unit

test-integration: build
	npx vitest run test/integration

test-e2e: build test-prereqs
	npx vitest run test/e2e

# The main job: build, get the Debian image, start bangerd (in its own network
# namespace), create a VM and show it answering. See README.md.
# DEMO_IMAGE=alpine (with MIRROR=, KERNEL_FROM= as for image-alpine) demos the Alpine image instead.
demo: build
	DEMO_IMAGE=$(or $(DEMO_IMAGE),debian) MIRROR=$(MIRROR) KERNEL_FROM=$(KERNEL_FROM) bash scripts/demo.sh

demo-clean:
	bash scripts/demo.sh --clean

image-debian: build
	bash images/debian/build.sh

# The pinned Alpine image (images/alpine/pin.ts), promoted as `alpine`. Each target runs
# the ones before it from cache. MIRROR=URL|DIR (or BANGER_ALPINE_MIRROR) is the package
# source; KERNEL_FROM=IMAGE takes the boot set from a registered image instead of
# linux-virt. Offline: make image-alpine MIRROR=/srv/alpine KERNEL_FROM=debian
ALPINE_ARGS = $(if $(MIRROR),--mirror $(MIRROR)) $(if $(KERNEL_FROM),--kernel-from $(KERNEL_FROM))
alpine-kernel: build
	bash images/alpine/build.sh kernel $(ALPINE_ARGS)
alpine-rootfs: build
	bash images/alpine/build.sh rootfs $(ALPINE_ARGS)
alpine-register: build
	bash images/alpine/build.sh register $(ALPINE_ARGS)
image-alpine: build
	bash images/alpine/build.sh all $(ALPINE_ARGS)

bench-create: build
	bash bench/run.sh $(ARGS)

# `banger vm stop` wall time: Ctrl-Alt-Del mapped to power-off vs reboot (fake firecracker),
# and with --qemu / --fc-guest a real Debian guest. See bench/stop.ts.
bench-stop: build
	BENCH=stop bash bench/run.sh $(ARGS)

# CLI wall times against `node -e 0`, bangerd's RSS idle and with 50 VM records, and GET /v1/vms
# server time with 200 records (fake Firecracker, own namespace). See bench/cli.ts.
bench-cli: build
	BENCH=cli bash bench/run.sh $(ARGS)

# `banger image build` stage medians (real guest under QEMU, one-line step) against a vm create
# of the same base to SSH-ready in the same run. ARGS="--runs 3 [--rootfs-size 2G]". See bench/build.ts.
bench-build: build
	BENCH=build bash bench/run.sh $(ARGS)
# Round-trip latency of `vm exec`, `vm ssh --vsock` and plain `vm ssh` to one real Debian guest
# (QEMU, no NAT), medians in one run. See bench/channel.ts.
bench-channel: build
	BENCH=channel bash bench/run.sh $(ARGS)
# bangerd's idle RSS with the web UI off and on, and the VMs page's first load in Chromium
# (median of 10, cache cleared, warm daemon). See bench/web.ts.
bench-web: build
	BENCH=web bash bench/run.sh $(ARGS)
# Apply→SSH-ready of 1 and of 12 MicroVMs on three bangerd nodes (the fake API server, the built
# banger-k8s, QEMU guests, one node pulling the image by digest) against single-host `vm create`
# to SSH-ready in the same run; placement and pull stage times. ARGS="--runs 3". See bench/cluster.ts.
bench-cluster: build
	BENCH=cluster bash bench/run.sh $(ARGS)

# An installable package: npm install -g build/dist/banger-<version>.tgz
dist: build
	@mkdir -p build/dist
	npm pack --pack-destination build/dist
	@ls -1 build/dist/*.tgz

clean:
	rm -rf build
