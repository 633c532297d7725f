#!/usr/bin/env node
import "../build/runtime/daemon/main.js";
