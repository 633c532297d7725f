import type { Command, Option } from "commander";

/** What a word can be completed with: names from the daemon, paths, or nothing we know. */
export type ValueKind = "vms" | "images" | "files" | "none";

/** One command of the tree as a shell needs it; `path` is the words after `banger` ("" for the root). */
export interface CmdSpec {
  path: string;
  subs: string[];
  /** Every flag spelling, long and short, the global ones included. */
  flags: string[];
  /** Flags that take a value, with what the value is. */
  values: Record<string, ValueKind>;
  /** Positional arguments in order; the last repeats when variadic. */
  args: ValueKind[];
}

/** The value of an option or argument by its placeholder name: `<image>`, `<vms>`, `<file>`. */
function kindOf(placeholder: string, path: string): ValueKind {
  if (placeholder === "image") return "images";
  if (placeholder === "vms" || placeholder === "vm" || (placeholder === "name" && path.startsWith("vm ") && !path.startsWith("vm create"))) return "vms";
  if (placeholder === "file" || placeholder === "dir" || placeholder === "path") return "files";
  return "none";
}

function optionSpec(o: Option, path: string): { flags: string[]; values: Record<string, ValueKind> } {
  const flags = [o.long, o.short].filter((f): f is string => Boolean(f));
  if (!o.required && !o.optional) return { flags, values: {} };
  // `--name <name>` on a create names something new: no completion for it.
  const placeholder = /[<[]([^>\]]+)[>\]]/.exec(o.flags)?.[1] ?? "";
  const kind = o.long === "--name" ? "none" : kindOf(placeholder, path);
  return { flags, values: Object.fromEntries(flags.map((f) => [f, kind])) };
}

/**
 * The command tree of the running program, read from commander, so a completion script always
 * matches the CLI that printed it. Hidden commands (`__complete`) are left out.
 */
export function commandSpecs(program: Command): CmdSpec[] {
  const help = program.createHelp();
  const global = program.options.filter((o) => !o.hidden).map((o) => optionSpec(o, ""));
  const out: CmdSpec[] = [];
  const walk = (cmd: Command, path: string) => {
    const subs = help.visibleCommands(cmd).filter((c) => c.name() !== "help");
    const own = help.visibleOptions(cmd).map((o) => optionSpec(o, path));
    const all = cmd === program ? own : [...global, ...own];
    out.push({
      path,
      subs: subs.map((c) => c.name()),
      flags: [...new Set(all.flatMap((o) => o.flags))],
      values: Object.assign({}, ...all.map((o) => o.values)) as Record<string, ValueKind>,
      args: cmd.registeredArguments.map((a) => kindOf(a.name(), path)),
    });
    for (const c of subs) walk(c, path ? `${path} ${c.name()}` : c.name());
  };
  walk(program, "");
  return out;
}
