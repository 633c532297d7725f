#!/usr/bin/env node
// The scale-out controller (docs/scale-out.md); its bundle is ESM, so it is imported.
import("../build/bundle/banger-k8s.js");
