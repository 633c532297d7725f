# banger — see README.md. Generated output stays under build/.
SHELL := /bin/bash
NODE ?= node
RUNTIME := build/runtime

.PHONY: all build test test-unit test-integration test-e2e dist image-debian bench-create demo clean lint

all: build

node_modules/.package-lock.json: package-lock.json
	npm ci
	@touch $@

build: node_modules/.package-lock.json
	npx tsc -p tsconfig.json
	@mkdir -p build/bin
	@printf '#!/bin/sh\nexec node "%s/$(RUNTIME)/cli/main.js" "$$@"\n' "$(CURDIR)" > build/bin/banger
	@printf '#!/bin/sh\nexec node "%s/$(RUNTIME)/daemon/main.js" "$$@"\n' "$(CURDIR)" > build/bin/bangerd
	@chmod +x build/bin/banger build/bin/bangerd

test: build
	npx vitest run

test-unit: build
	npx vitest run test/unit

test-integration: build
	npx vitest run test/integration

test-e2e: build
	npx vitest run test/e2e

clean:
	rm -rf build
