#!/usr/bin/env node
import { Command } from "commander";
import { loadConfig } from "../config/load.js";
import { asBangerError } from "../domain/errors.js";
import { VERSION } from "../version.js";
import { runDaemon } from "./run.js";

async function main(): Promise<void> {
  const program = new Command("bangerd")
    .description("banger daemon: owns VMs, images and the host network")
    .version(VERSION)
    .option("--config <file>", "config file (default $XDG_CONFIG_HOME/banger/config.toml)")
    .option("--socket <path>", "Unix socket to serve")
    .parse();
  const opts = program.opts<{ config?: string; socket?: string }>();
  try {
    await runDaemon(loadConfig({ configFlag: opts.config, socketFlag: opts.socket }));
  } catch (e) {
    const err = asBangerError(e);
    process.stderr.write(`bangerd: ${err.message}${err.hint ? `\nhint: ${err.hint}` : ""}\n`);
    process.exit(1);
  }
}

void main();
