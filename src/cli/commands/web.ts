import { pausedPoolLine, type PausedPoolView } from "../../domain/pool-summary.js";
import type { Command } from "commander";
import type { CliContext } from "../context.js";
import { bytes, keyValues, table } from "../output.js";

interface HostReply {
  version: string;
  vmm: string;
  pid: number;
  rssBytes: number;
  uptimeS: number;
  memory?: { totalMib: number; availableMib?: number };
  config: Record<string, { value: unknown; source: string }>;
  web?: { status: string; detail: string; fix?: string };
  pool: {
    taps?: { idle: number; size: number; total: number };
    disks?: { sets: Record<string, number>; bytes: number; maxBytes: number; capped: string[] };
    vms?: PausedPoolView;
  };
}

export function registerWeb(program: Command, ctx: CliContext): void {
  program
    .command("web")
    .description("print the web UI's address with a one-time login link (valid 10 minutes, once)")
    .action(async () => {
      const link = await ctx.client().call<{ url: string; expiresAt: string }>("POST", "/web/login", {});
      ctx.out(`${link.url}\n(one-time link; it expires at ${link.expiresAt}; run \`banger web\` again for another)`, link);
    });

  program
    .command("host")
    .description("bangerd's version, memory, pool capacity and the config in effect (what the web UI's Host page shows)")
    .action(async () => {
      const h = await ctx.client().call<HostReply>("GET", "/host");
      const t = h.pool.taps;
      const dk = h.pool.disks;
      ctx.out(
        () =>
          keyValues([
            ["bangerd", `${h.version} (pid ${h.pid}, vmm ${h.vmm}, up ${h.uptimeS} s, RSS ${bytes(h.rssBytes)})`],
            ["host memory", h.memory ? `${h.memory.availableMib ?? "?"} MiB available of ${h.memory.totalMib} MiB` : undefined],
            ["web", h.web ? `${h.web.status} ${h.web.detail}` : undefined],
            ["tap pool", t ? `${t.idle} idle of ${t.size}; ${t.total} banger TAPs` : "unknown"],
            [
              "disk pool",
              dk
                ? `${
                    Object.entries(dk.sets)
                      .map(([k, n]) => `${k} ${n}`)
                      .join(", ") || "no sets"
                  }; ${bytes(dk.bytes)}${dk.maxBytes ? ` of ${bytes(dk.maxBytes)}` : ""}`
                : "unknown",
            ],
            ["paused pool", pausedPoolLine(h.pool.vms)],
          ]) +
          "\n\n" +
          table(
            ["KEY", "VALUE", "SOURCE"],
            Object.entries(h.config).map(([k, v]) => [k, JSON.stringify(v.value), v.source]),
          ),
        h,
      );
    });
}
