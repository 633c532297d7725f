#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { asBangerError } from "../domain/errors.js";
import { VERSION } from "../version.js";
import { CliContext } from "./context.js";
import { registerConfig } from "./commands/config.js";
import { registerDaemon } from "./commands/daemon.js";
import { registerDoctor } from "./commands/doctor.js";
import { registerImage } from "./commands/image.js";
import { registerVm } from "./commands/vm.js";

const EXIT_USAGE = 2;

async function main(argv: string[]): Promise<number> {
  const program = new Command("banger")
    .description("disposable microVM sandboxes: Firecracker or QEMU microvm, managed by bangerd")
    .option("--json", "machine-readable output")
    .option("--socket <path>", "bangerd socket (default from config)")
    .option("--config <file>", "config file (default $XDG_CONFIG_HOME/banger/config.toml, or BANGER_CONFIG)")
    .showHelpAfterError()
    .exitOverride();
  const ctx = new CliContext(program);
  program.command("version").description("print the CLI (and daemon, when reachable) version").action(async () => {
    const daemon = await ctx.client().call<{ version: string }>("GET", "/version").then((v) => v.version, () => undefined);
    ctx.out(`banger ${VERSION}${daemon ? `\nbangerd ${daemon}` : "\nbangerd not running"}`, { cli: VERSION, daemon: daemon ?? null });
  });
  registerDaemon(program, ctx);
  registerImage(program, ctx);
  registerVm(program, ctx);
  registerConfig(program, ctx);
  registerDoctor(program, ctx);

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
    await ctx.close();
  }
}

main(process.argv).then((code) => process.exit(code));
