#!/usr/bin/env -S node --max-semi-space-size=1
// The flag keeps bangerd's young generation small; see BANGERD_NODE_FLAGS in the Makefile.
import("../build/bundle/bangerd.js");
