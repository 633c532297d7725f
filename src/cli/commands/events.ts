import { request } from "node:http";
import type { Command } from "commander";
import { BangerError } from "../../domain/errors.js";
import type { LifecycleEvent, Vm } from "../../domain/types.js";
import type { CliContext } from "../context.js";
import { ms } from "../output.js";

function human(event: string, data: string): string | undefined {
  const at = new Date().toISOString().slice(11, 19);
  const j = JSON.parse(data) as { vm?: Vm; vms?: Vm[]; name?: string; event?: LifecycleEvent };
  switch (event) {
    case "hello":
      return `${at} connected; ${j.vms?.length ?? 0} VM(s)`;
    case "vm":
      return `${at} vm    ${j.vm!.name} ${j.vm!.state}${j.vm!.ip ? ` ${j.vm!.ip}` : ""}${j.vm!.lastError ? ` (${j.vm!.lastError})` : ""}`;
    case "vm-removed":
      return `${at} vm    ${j.name} removed`;
    case "stage": {
      const e = j.event!;
      return `${at} stage ${e.vmName} ${e.op} ${e.stage} ${e.outcome} ${ms(e.durationMs)}${e.detail ? `  ${e.detail.split("\n")[0]}` : ""}`;
    }
    case "images":
      return `${at} images changed`;
    default:
      return undefined;
  }
}

/** Follows GET /v1/events until Ctrl-C: what the web UI's live views are built on. */
export function registerEvents(program: Command, ctx: CliContext): void {
  program
    .command("events")
    .description("follow VM state changes and lifecycle stages as bangerd records them (Ctrl-C ends); --json prints one event per line, its name in `type`")
    .action(async () => {
      const socketPath = await ctx.socket();
      await new Promise<void>((resolve, reject) => {
        const req = request({ socketPath, path: "/v1/events", headers: { accept: "text/event-stream" } }, (res) => {
          if (res.statusCode !== 200) {
            reject(new BangerError("INTERNAL", `bangerd answered ${res.statusCode} to GET /v1/events`));
            return;
          }
          let buf = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            buf += chunk;
            let cut: number;
            while ((cut = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, cut);
              buf = buf.slice(cut + 2);
              const event = /^event: (.*)$/m.exec(block)?.[1];
              const data = block
                .split("\n")
                .filter((l) => l.startsWith("data: "))
                .map((l) => l.slice(6))
                .join("\n");
              if (!event || !data) continue;
              const line = ctx.json ? JSON.stringify({ type: event, ...(JSON.parse(data) as object) }) : human(event, data);
              if (line) process.stdout.write(line + "\n");
            }
          });
          res.on("end", resolve);
          res.on("error", reject);
        });
        req.on("error", (e) =>
          reject(
            new BangerError("DAEMON_UNREACHABLE", `bangerd is not running (socket ${socketPath}): ${e.message}`, {
              hint: "start it with `banger daemon start`",
            }),
          ),
        );
        req.end();
      });
    });
}
