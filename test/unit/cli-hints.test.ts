import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/program.js";

const SRC = join(import.meta.dirname, "../../src");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Every `banger …` a message or hint tells the user to run, with where it was written. */
function mentioned(): { file: string; words: string[] }[] {
  const out: { file: string; words: string[] }[] = [];
  for (const file of sources(SRC)) {
    // Hints sit in template literals, so their backticks are escaped (\`banger …\`); plain strings use bare ones.
    for (const m of readFileSync(file, "utf8").matchAll(/\\?`banger ([^`\\]*)\\?`/g)) {
      out.push({ file: file.slice(SRC.length + 1), words: m[1].trim().split(/\s+/) });
    }
  }
  return out;
}

/** Walks the words down the command tree; returns what does not exist, or undefined. */
function problem(program: Command, words: string[]): string | undefined {
  let cmd = program;
  let i = 0;
  for (; i < words.length; i++) {
    const w = words[i];
    if (w.startsWith("-") || w.startsWith("<") || w.includes("$") || w === "--") break;
    const sub = cmd.commands.find((c) => c.name() === w || c.aliases().includes(w));
    if (!sub) {
      // Arguments of a leaf command (a VM name) are fine; an unknown word under a group is not.
      if (cmd.commands.length > 0) return `no command "${w}" under "${cmd.name()}"`;
      break;
    }
    cmd = sub;
  }
  if (cmd.commands.length > 0 && cmd !== program) return `"${cmd.name()}" is a group; a subcommand is missing`;
  const flags = new Set([...cmd.options, ...program.options].flatMap((o) => [o.long, o.short].filter(Boolean) as string[]));
  for (const w of words.slice(i)) {
    if (w === "--") break;
    const flag = w.split("=")[0];
    if (flag.startsWith("-") && !flags.has(flag)) return `"${cmd.name()}" has no option ${flag}`;
  }
  return undefined;
}

describe("hints name commands that exist", () => {
  const { program } = buildProgram();
  const all = mentioned();

  it("finds the hints it checks", () => {
    expect(all.length).toBeGreaterThan(20);
  });

  it("every `banger …` in messages and hints is a real command with real options", () => {
    const bad = all.map((m) => ({ ...m, why: problem(program, m.words) })).filter((m) => m.why);
    expect(bad.map((b) => `${b.file}: banger ${b.words.join(" ")}: ${b.why}`)).toEqual([]);
  });

  it("would catch a command that does not exist", () => {
    expect(problem(program, ["vm", "kill", "x"])).toMatch(/no command "kill"/);
    expect(problem(program, ["vm", "rm", "--hard"])).toMatch(/no option --hard/);
    expect(problem(program, ["vm", "rm", "--force", "x"])).toBeUndefined();
  });
});
