import { request } from "node:http";
import { quickSocket } from "../socket.js";

/** The whole budget of one lookup, connect to last byte: a shell waits on it at every Tab. */
export const COMPLETE_BUDGET_MS = 150;

export type NameKind = "vms" | "images";

/** GET one /v1 list within `budgetMs`; undefined on any failure (no daemon, no access, too slow). */
function fetchJson(socketPath: string, path: string, budgetMs: number): Promise<unknown> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        clearTimeout(timer);
        try {
          resolve(res.statusCode === 200 ? JSON.parse(body) : undefined);
        } catch {
          resolve(undefined);
        }
      });
      res.on("error", () => resolve(undefined));
    });
    // One timer for the whole exchange: a daemon that accepts and then stalls must not stall the shell.
    const timer = setTimeout(() => req.destroy(), budgetMs);
    req.on("error", () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    req.end();
  });
}

/** Names a shell can offer: VM names, or image names with their aliases. Empty when the daemon is unreachable. */
export async function completionNames(kind: NameKind, opts: { socket?: string; config?: string }, budgetMs = COMPLETE_BUDGET_MS): Promise<string[]> {
  const socket = quickSocket(opts);
  if (!socket) return [];
  if (kind === "vms") {
    const r = (await fetchJson(socket, "/v1/vms", budgetMs)) as { vms?: { name: string }[] } | undefined;
    return (r?.vms ?? []).map((v) => v.name);
  }
  const r = (await fetchJson(socket, "/v1/images", budgetMs)) as { images?: { name: string; aliases?: string[] }[] } | undefined;
  return [...new Set((r?.images ?? []).flatMap((i) => [...(i.aliases ?? []), i.name]))];
}

/**
 * `banger __complete vms|images [--socket S] [--config F]`: one name a line, and nothing (exit 0)
 * when the daemon is down or slow. Runs from its own small bundle (scripts/bundle/banger-entry.cjs
 * sends it there) so a Tab does not pay for loading the whole CLI.
 */
export async function completeMain(argv: string[]): Promise<void> {
  const kind = argv[0];
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i > 0 ? argv[i + 1] : undefined;
  };
  if (kind !== "vms" && kind !== "images") return;
  const names = await completionNames(kind, { socket: flag("--socket"), config: flag("--config") });
  if (names.length) process.stdout.write(`${names.join("\n")}\n`);
}
