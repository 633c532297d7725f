import { Command } from "commander";
import { VERSION } from "../version.js";
import { CliContext } from "./context.js";
import { registerConfig } from "./commands/config.js";
import { registerDaemon } from "./commands/daemon.js";
import { registerDoctor } from "./commands/doctor.js";
import { registerImage } from "./commands/image.js";
import { registerVm } from "./commands/vm.js";
import { registerWeb } from "./commands/web.js";
import { registerEvents } from "./commands/events.js";
import { registerCompletion } from "./commands/completion.js";
import { registerTop } from "./commands/top.js";

/** The whole command tree; main.ts runs it, and test/unit/cli-hints.test.ts checks every hint against it. */
export function buildProgram(): { program: Command; ctx: CliContext } {
  const program = new Command("banger")
    .description("disposable microVM sandboxes: Firecracker or QEMU microvm, managed by bangerd")
    .option("--json", "machine-readable output")
    .option("--socket <path>", "bangerd socket (default from config)")
    .option("--config <file>", "config file (default $XDG_CONFIG_HOME/banger/config.toml, or BANGER_CONFIG)")
    .showHelpAfterError()
    .exitOverride();
  const ctx = new CliContext(program);
  program
    .command("version")
    .description("print the CLI (and daemon, when reachable) version")
    .action(async () => {
      const daemon = await ctx
        .client()
        .call<{ version: string }>("GET", "/version")
        .then(
          (v) => v.version,
          () => undefined,
        );
      ctx.out(`banger ${VERSION}${daemon ? `\nbangerd ${daemon}` : "\nbangerd not running"}`, { cli: VERSION, daemon: daemon ?? null });
    });
  registerDaemon(program, ctx);
  registerImage(program, ctx);
  registerVm(program, ctx);
  registerConfig(program, ctx);
  registerDoctor(program, ctx);
  registerWeb(program, ctx);
  registerEvents(program, ctx);
  registerTop(program, ctx);
  registerCompletion(program, ctx);
  return { program, ctx };
}
