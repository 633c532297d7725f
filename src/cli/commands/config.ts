import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { table } from "../output.js";

function flatten(obj: Record<string, unknown>, prefix = ""): [string, unknown][] {
  return Object.entries(obj).flatMap(([k, v]) =>
    v && typeof v === "object" && !Array.isArray(v) ? flatten(v as Record<string, unknown>, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]],
  );
}

export function registerConfig(program: Command, ctx: CliContext): void {
  const c = program.command("config").description("where the config lives and what it resolves to");
  c.command("path")
    .description("print the config file path")
    .action(async () => {
      const cfg = await ctx.cfg();
      ctx.out(cfg.path + (cfg.fileExists ? "" : "  (does not exist; defaults apply)"), { path: cfg.path, exists: cfg.fileExists });
    });
  c.command("show")
    .description("print the resolved config and where each value came from")
    .option("--toml", "print as TOML (a starting point for your own file)")
    .action(async (o: { toml?: boolean }) => {
      // Only this command needs the key docs and the TOML writer; other commands do not load them.
      const [cfg, { KEY_DOCS }, { stringify }] = await Promise.all([ctx.cfg(), import("../../config/schema.js"), import("smol-toml")]);
      const rows = flatten(cfg.config as Record<string, unknown>).map(([k, v]) => ({
        key: k,
        value: v,
        source: cfg.sources[k] ?? "default",
        doc: KEY_DOCS[k],
      }));
      if (o.toml && !ctx.json) {
        process.stdout.write(stringify(cfg.config as Record<string, unknown>) + "\n");
        return;
      }
      const unset = Object.keys(KEY_DOCS)
        .filter((k) => !rows.some((r) => r.key === k))
        .map((k) => ({ key: k, value: undefined, source: "unset", doc: KEY_DOCS[k] }));
      const all = [...rows, ...unset];
      ctx.out(
        () =>
          `# ${cfg.path}${cfg.fileExists ? "" : " (not present; defaults)"}\n` +
          table(
            ["KEY", "VALUE", "SOURCE"],
            all.map((r) => [r.key, r.value === undefined ? "(unset)" : JSON.stringify(r.value), r.source]),
          ),
        { path: cfg.path, exists: cfg.fileExists, values: all },
      );
    });
}
