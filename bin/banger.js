#!/usr/bin/env node
import "../build/bundle/banger.js";
