#!/usr/bin/env node
import { CommanderError } from "commander";
import { asBangerError } from "../domain/errors.js";
import { buildProgram } from "./program.js";

const EXIT_USAGE = 2;

async function main(argv: string[]): Promise<number> {
  const { program, ctx } = buildProgram();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return 0;
      return EXIT_USAGE;
    }
    const err = asBangerError(e);
    if (ctx.json) {
      process.stdout.write(`${JSON.stringify({ error: err.toJSON() }, null, 2)}\n`);
    } else {
      process.stderr.write(`error: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ""}`);
    }
    // 130 as a shell reports a Ctrl-C, so scripts can tell a cancel from a failure.
    return err.code === "CANCELLED" ? 130 : 1;
  } finally {
    // bench/cli.ts subtracts the daemon's share from the CLI's wall time.
    if (process.env.BANGER_TIMING) process.stderr.write(`banger-timing: ${JSON.stringify(ctx.timing())}\n`);
  }
}

void main(process.argv).then((code) => process.exit(code));
