import { request, type ClientRequest } from "node:http";
import type { Command } from "commander";
import type { Vm } from "../../domain/types.js";
import type { CliContext } from "../context.js";
import { SseParser } from "../stage-events.js";
import { applyEvent, emptyState, type HostView, type TopState } from "../top/model.js";
import { renderPlain, renderTop } from "../top/render.js";

const ALT_SCREEN_ON = "\x1b[?1049h";
const ALT_SCREEN_OFF = "\x1b[?1049l";
const CURSOR_HIDE = "\x1b[?25l";
const CURSOR_SHOW = "\x1b[?25h";
/** Cursor home; each line then clears its own rest, and the screen below the last is cleared: no flicker of a full clear. */
const HOME = "\x1b[H";
const CLEAR_EOL = "\x1b[K";
const CLEAR_BELOW = "\x1b[J";
/** Uptimes advance with this clock; everything else is redrawn when an event says so. */
const TICK_MS = 1000;
/** Several VM events in a burst (a create's transitions) cost one /v1/host fetch. */
const HOST_REFETCH_MS = 200;
const RECONNECT_MS = 1000;

/** Without a terminal: one snapshot of the same data, as a table or (--json) as JSON. */
async function snapshot(ctx: CliContext): Promise<void> {
  const [{ vms }, host] = await Promise.all([ctx.client().call<{ vms: Vm[] }>("GET", "/vms"), ctx.client().call<HostView>("GET", "/host")]);
  const s = emptyState();
  applyEvent(s, "hello", { vms });
  s.host = host;
  ctx.out(() => renderPlain(s, Date.now()), { vms, host });
}

/** The live view: the event stream drives it, q or Ctrl-C leaves it with the terminal as it was. */
async function live(ctx: CliContext): Promise<void> {
  const socketPath = await ctx.socket();
  const out = process.stdout;
  const stdin = process.stdin;
  const s: TopState = emptyState();
  let req: ClientRequest | undefined;
  let hostTimer: NodeJS.Timeout | undefined;
  let reconnect: NodeJS.Timeout | undefined;
  let closing = false;

  const draw = () => {
    const lines = renderTop(s, { cols: out.columns || 80, rows: out.rows || 24 }, Date.now());
    out.write(HOME + lines.map((l) => l + CLEAR_EOL).join("\r\n") + CLEAR_BELOW);
  };
  const refetchHost = () => {
    clearTimeout(hostTimer);
    hostTimer = setTimeout(() => {
      ctx
        .client()
        .call<HostView>("GET", "/host", undefined, 5_000)
        .then(
          (h) => (s.host = h),
          (e: Error) => (s.note = `host: ${e.message}`),
        )
        .finally(draw);
    }, HOST_REFETCH_MS);
  };
  const connect = () => {
    const parser = new SseParser((event, data) => {
      if (applyEvent(s, event, JSON.parse(data))) refetchHost();
      draw();
    });
    const lost = (why: string) => {
      if (closing) return;
      s.connected = false;
      s.note = `${why}; reconnecting`;
      draw();
      clearTimeout(reconnect);
      reconnect = setTimeout(connect, RECONNECT_MS);
    };
    req = request({ socketPath, path: "/v1/events", agent: false, headers: { accept: "text/event-stream" } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return lost(`bangerd answered ${res.statusCode} to GET /v1/events`);
      }
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => parser.push(chunk));
      res.on("end", () => lost("event stream ended"));
      res.on("error", () => lost("event stream failed"));
    });
    req.on("error", (e) => lost(`cannot reach bangerd: ${e.message}`));
    req.end();
  };

  await new Promise<void>((resolve) => {
    const tick = setInterval(draw, TICK_MS);
    const finish = () => {
      if (closing) return;
      closing = true;
      clearInterval(tick);
      clearTimeout(hostTimer);
      clearTimeout(reconnect);
      req?.destroy();
      out.off("resize", draw);
      stdin.off("data", onKey);
      process.off("SIGTERM", finish);
      process.off("SIGHUP", finish);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
      out.write(CURSOR_SHOW + ALT_SCREEN_OFF);
      resolve();
    };
    // Raw mode: keys arrive one by one and Ctrl-C is a byte (0x03), not a SIGINT.
    const onKey = (b: Buffer) => {
      if (b.includes(0x71) || b.includes(0x51) || b.includes(0x03) || b.includes(0x04)) finish();
    };
    out.write(ALT_SCREEN_ON + CURSOR_HIDE);
    if (stdin.isTTY) stdin.setRawMode(true);
    stdin.resume();
    stdin.on("data", onKey);
    out.on("resize", draw);
    process.on("SIGTERM", finish);
    process.on("SIGHUP", finish);
    draw();
    connect();
  });
}

export function registerTop(program: Command, ctx: CliContext): void {
  program
    .command("top")
    .description(
      "live view of VMs (state, uptime, vCPU, memory) and the host's pools and memory, driven by bangerd's event stream; q quits. Without a terminal: one table (--json: JSON)",
    )
    .action(async () => {
      if (ctx.json || !process.stdout.isTTY || !process.stdin.isTTY) return snapshot(ctx);
      // Fail as any other command does when the daemon is down, before taking over the screen.
      await ctx.client().call("GET", "/version", undefined, 5_000);
      await live(ctx);
    });
}
