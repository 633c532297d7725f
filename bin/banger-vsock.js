#!/usr/bin/env node
// CommonJS (bin/package.json), like bin/banger.js: the ssh ProxyCommand companion starts without Node's ESM loader.
require("../build/bundle/banger-vsock.cjs");
