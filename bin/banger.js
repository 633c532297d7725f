#!/usr/bin/env node
import "../build/runtime/cli/main.js";
