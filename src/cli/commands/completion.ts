import { Argument, type Command } from "commander";
import type { CliContext } from "../context.js";
import { completionNames } from "../completion/names.js";
import { commandSpecs } from "../completion/spec.js";
import { completionScript, SHELLS, type Shell } from "../completion/scripts.js";

export function registerCompletion(program: Command, ctx: CliContext): void {
  program
    .command("completion")
    .addArgument(new Argument("<shell>").choices(SHELLS))
    .description(
      "print a completion script for bash, zsh or fish: commands, flags, and VM and image names from bangerd (e.g. `source <(banger completion bash)` in ~/.bashrc)",
    )
    .action((shell: Shell) => {
      process.stdout.write(completionScript(shell, commandSpecs(program)));
    });

  // What the scripts call for names. The bundled CLI answers it from banger-complete.cjs before
  // this tree is even built; this is the same answer for the unbundled build.
  program.command("__complete <kind>", { hidden: true }).action(async (kind: string) => {
    if (kind !== "vms" && kind !== "images") return;
    const names = await completionNames(kind, ctx.opts);
    if (names.length) process.stdout.write(`${names.join("\n")}\n`);
  });
}
