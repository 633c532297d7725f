#!/usr/bin/env node
// CommonJS (bin/package.json): the CLI bundle is CommonJS so it starts without Node's ESM loader.
require("../build/bundle/banger.cjs");
