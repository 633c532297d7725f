import { Watch, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";

/** The few fields the node agent reads of any object, the same in typed lists and raw watch events. */
export interface KubeObject {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    deletionTimestamp?: unknown;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    finalizers?: string[];
    generation?: number;
    ownerReferences?: { kind?: string; uid?: string; controller?: boolean }[];
  };
  spec?: unknown;
  status?: unknown;
}

export interface ListWatchSource {
  /** For logs. */
  what: string;
  /** The watch path, e.g. /api/v1/pods. */
  path: string;
  query: Record<string, string>;
  list(): Promise<{ items: KubeObject[]; resourceVersion: string }>;
}

/** The server ends each watch after this; a new one resumes from the last resourceVersion seen. */
const WATCH_TIMEOUT_S = 300;
/** No event, not even a bookmark, for this long: the connection is presumed dead and reopened. */
const SILENCE_MS = (WATCH_TIMEOUT_S + 60) * 1000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

const keyOf = (o: KubeObject) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

/**
 * A list, then watches resumed from the last resourceVersion (bookmarks asked for, so a quiet
 * watch still moves it), relisting after a 410 or any failure. `onChange` gets the whole cache
 * after the first list and after every change; until the first list it is not called at all, so
 * an empty cache never means "nothing is assigned" by mistake.
 */
export async function listWatch(
  kc: KubeConfig,
  src: ListWatchSource,
  onChange: (objects: Map<string, KubeObject>) => void,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  const watch = new Watch(kc);
  let cache = new Map<string, KubeObject>();
  let rv = "";
  let delay = RETRY_MIN_MS;
  while (!signal.aborted) {
    try {
      if (rv === "") {
        const listed = await src.list();
        cache = new Map(listed.items.map((o) => [keyOf(o), o]));
        rv = listed.resourceVersion;
        onChange(cache);
      }
      const outcome = await watchOnce(watch, src, rv, signal, (type, obj) => {
        if (obj.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
        if (type === "BOOKMARK") return;
        if (type === "DELETED") cache.delete(keyOf(obj));
        else cache.set(keyOf(obj), obj);
        onChange(cache);
      });
      delay = RETRY_MIN_MS;
      if (outcome === "expired") {
        log.info({ stage: "cluster-watch", what: src.what }, "watch expired (410); relisting");
        rv = "";
      }
    } catch (e) {
      if (signal.aborted) return;
      log.warn({ stage: "cluster-watch", what: src.what, err: (e as Error).message, retryMs: delay }, "list/watch failed; retrying");
      // After a failure the position is not trusted: the next round starts with a fresh list.
      rv = "";
      await sleep(delay, signal);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }
}

/** One watch request, until the server ends it, it goes silent, it reports 410, or `signal` aborts. */
function watchOnce(
  watch: Watch,
  src: ListWatchSource,
  rv: string,
  signal: AbortSignal,
  onEvent: (type: string, obj: KubeObject) => void,
): Promise<"ended" | "expired"> {
  return new Promise((resolve, reject) => {
    let expired = false;
    let req: AbortController | undefined;
    let silence: NodeJS.Timeout | undefined;
    const quiet = () => {
      clearTimeout(silence);
      silence = setTimeout(() => req?.abort(), SILENCE_MS);
    };
    const onAbort = () => req?.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const finish = (err?: unknown) => {
      clearTimeout(silence);
      signal.removeEventListener("abort", onAbort);
      if (err && !signal.aborted && !expired) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(expired ? "expired" : "ended");
    };
    const query = { ...src.query, resourceVersion: rv, allowWatchBookmarks: "true", timeoutSeconds: String(WATCH_TIMEOUT_S) };
    quiet();
    watch
      .watch(
        src.path,
        query,
        (type, obj: KubeObject & { code?: number }) => {
          quiet();
          if (type === "ERROR") {
            if (obj.code === 410) expired = true;
            req?.abort();
            return;
          }
          onEvent(type, obj);
        },
        (err) => finish(err ?? undefined),
      )
      .then(
        (c) => {
          req = c;
          if (signal.aborted) c.abort();
        },
        (e: unknown) => finish(e),
      );
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });
}
