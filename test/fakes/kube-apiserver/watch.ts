// ?watch=1: newline-delimited watch events from a resourceVersion, replayed from the store's history and then
// live. ADDED/MODIFIED/DELETED follow selector transitions (an object that stops matching is DELETED for this
// watcher), BOOKMARK carries only a resourceVersion, and a resourceVersion older than the history answers an ERROR
// event with a 410 Status and ends the stream, as the real server does after etcd compaction.
import { type ServerResponse } from "node:http";
import { type Api } from "./api.js";
import { type Matcher } from "./selectors.js";
import { badRequest, gone } from "./status.js";
import { type Change, type KObj, type ResourceType, apiVersionOf } from "./types.js";

export interface WatchParams {
  rt: ResourceType;
  ns: string | undefined;
  match: Matcher;
  resourceVersion: string | null;
  bookmarks: boolean;
  timeoutSeconds: number;
  bookmarkIntervalMs: number;
}

export type EventSink = (type: string, obj: unknown) => void;

/** Live watches, so tests can send bookmarks on demand or drop every watch (as an API server restart would). */
export class Watches {
  private readonly open = new Set<{ bookmark: () => void; end: () => void }>();
  /** Every event body sent, for the response self-check. */
  onEvent?: (rt: ResourceType, type: string, obj: KObj) => void;

  constructor(private readonly api: Api) {}

  get count(): number {
    return this.open.size;
  }

  bookmarkAll(): void {
    for (const w of this.open) w.bookmark();
  }

  closeAll(): void {
    for (const w of [...this.open]) w.end();
  }

  serve(p: WatchParams, res: ServerResponse): void {
    const { rt, ns } = p;
    const sameType = (c: Change) =>
      c.rt.group === rt.group && c.rt.plural === rt.plural && (!rt.namespaced || ns === undefined || c.obj.metadata.namespace === ns);
    const view = (o: KObj): KObj => ({ ...o, apiVersion: apiVersionOf(rt), kind: rt.kind });
    let replay: Change[] | undefined;
    let initial: KObj[] = [];
    if (p.resourceVersion === null || p.resourceVersion === "" || p.resourceVersion === "0") {
      initial = this.api.store.list(rt, rt.namespaced ? ns : undefined).filter(p.match);
      replay = [];
    } else {
      const rv = Number(p.resourceVersion);
      if (!Number.isInteger(rv) || rv < 0) throw badRequest(`invalid resource version: "${p.resourceVersion}"`);
      replay = this.api.store.since(rv);
    }
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked", "Cache-Control": "no-cache, private" });
    // Clients wait for the headers before they read events; the real server sends them at once too.
    res.flushHeaders();
    const send = (type: string, obj: KObj | object) => {
      if (type !== "ERROR" && type !== "BOOKMARK") this.onEvent?.(rt, type, obj as KObj);
      res.write(`${JSON.stringify({ type, object: obj })}\n`);
    };
    if (replay === undefined) {
      const err = gone(`too old resource version: ${p.resourceVersion} (${this.api.store.oldestWatchable + 1})`);
      send("ERROR", err.body());
      res.end();
      return;
    }
    const deliver = (c: Change) => {
      if (!sameType(c)) return;
      const now = p.match(c.obj);
      const before = c.prev ? p.match(c.prev) : false;
      if (c.type === "ADDED" && now) send("ADDED", view(c.obj));
      else if (c.type === "DELETED" && (before || now)) send("DELETED", view(c.obj));
      else if (c.type === "MODIFIED") {
        if (now && before) send("MODIFIED", view(c.obj));
        else if (now) send("ADDED", view(c.obj));
        else if (before) send("DELETED", view(c.obj));
      }
    };
    for (const o of initial) send("ADDED", view(o));
    for (const c of replay) deliver(c);
    // Replay and subscribe run in one synchronous turn, so no change can fall between them.
    const unsubscribe = this.api.store.subscribe(deliver);
    const bookmark = () => {
      if (p.bookmarks) send("BOOKMARK", { apiVersion: apiVersionOf(rt), kind: rt.kind, metadata: { resourceVersion: String(this.api.store.revision) } });
    };
    const interval = setInterval(bookmark, p.bookmarkIntervalMs);
    const timeout = setTimeout(() => entry.end(), p.timeoutSeconds * 1000);
    const entry = {
      bookmark,
      end: () => {
        if (!this.open.delete(entry)) return;
        unsubscribe();
        clearInterval(interval);
        clearTimeout(timeout);
        res.end();
      },
    };
    this.open.add(entry);
    res.on("close", () => entry.end());
  }
}
