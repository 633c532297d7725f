#!/usr/bin/env -S node --max-semi-space-size=1 --no-opt --no-maglev --no-sparkplug --optimize-for-size
// The flags keep bangerd's resident memory small; see BANGERD_NODE_FLAGS in the Makefile.
import("../build/bundle/bangerd.js");
