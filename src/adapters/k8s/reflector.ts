import { type KubeConfig, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { setTimeout as sleep } from "node:timers/promises";

interface Meta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface ReflectorSpec<T extends Meta> {
  /** For logs: "pods", "nodes", "microvms". */
  what: string;
  /** A complete list and the resourceVersion it was taken at. */
  list: () => Promise<{ items: T[]; resourceVersion: string }>;
  /** The collection's path, e.g. /api/v1/pods. */
  path: string;
  labelSelector?: string;
}

/** A watch is ended by the server after this long; a fresh one resumes from the last resourceVersion. */
const WATCH_SECONDS = 240;
/** No line at all (bookmarks included) for this long means a dead connection. */
const IDLE_MS = (WATCH_SECONDS + 30) * 1000;

const keyOf = (o: Meta) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

/**
 * Keeps a local copy of one collection: list, then watch from the list's resourceVersion; a watch
 * that ends resumes from the last version seen (bookmarks included); 410 Gone relists. Consumers
 * read `items` whole after `onChange`, so duplicate or replayed events change nothing.
 */
export class Reflector<T extends Meta> {
  readonly items = new Map<string, T>();
  synced = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly spec: ReflectorSpec<T>,
    private readonly onChange: () => void,
    private readonly log: Logger,
  ) {}

  async run(signal: AbortSignal): Promise<void> {
    let rv: string | undefined;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (rv === undefined) {
          const listed = await this.spec.list();
          this.items.clear();
          for (const o of listed.items) this.items.set(keyOf(o), o);
          rv = listed.resourceVersion;
          this.synced = true;
          this.log.debug({ stage: "list", what: this.spec.what, count: listed.items.length, rv }, "listed");
          this.onChange();
        }
        const next = await this.watchFrom(rv, signal);
        if (next === undefined) this.log.info({ stage: "watch", what: this.spec.what, rv }, "watch history expired (410); relisting");
        rv = next;
        failures = 0;
      } catch (e) {
        if (signal.aborted) break;
        failures++;
        this.log.warn({ stage: "watch", what: this.spec.what, err: (e as Error).message }, "list/watch failed; retrying");
        await sleep(Math.min(200 * 2 ** failures, 10_000), undefined, { signal }).catch(() => undefined);
      }
    }
  }

  /** One watch from `rv`: resolves with the version to resume from, or undefined after 410 Gone. */
  private watchFrom(rv: string, signal: AbortSignal): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      let last: string | undefined = rv;
      let idle: NodeJS.Timeout | undefined;
      let abortWatch: (() => void) | undefined;
      const stop = () => abortWatch?.();
      const touch = () => {
        clearTimeout(idle);
        idle = setTimeout(stop, IDLE_MS);
      };
      const finish = (err: unknown) => {
        clearTimeout(idle);
        signal.removeEventListener("abort", stop);
        const code = (err as { statusCode?: number } | null)?.statusCode;
        if (code === 410) resolve(undefined);
        else if (err && last !== undefined && !signal.aborted && (err as Error).name !== "AbortError") reject(err as Error);
        else resolve(last);
      };
      signal.addEventListener("abort", stop, { once: true });
      touch();
      const query = { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: WATCH_SECONDS, labelSelector: this.spec.labelSelector };
      new Watch(this.kc)
        .watch(
          this.spec.path,
          query,
          (type: string, obj: T & { code?: number }) => {
            touch();
            if (type === "ERROR") {
              // The server ends the stream after this; 410 means our version left its history.
              if (obj.code === 410) last = undefined;
              return;
            }
            const v = obj.metadata?.resourceVersion;
            if (v) last = v;
            if (type === "BOOKMARK") return;
            if (type === "DELETED") this.items.delete(keyOf(obj));
            else this.items.set(keyOf(obj), obj);
            this.onChange();
          },
          (err: unknown) => finish(last === undefined ? { statusCode: 410 } : err),
        )
        .then((ctl) => {
          abortWatch = () => ctl.abort();
          if (signal.aborted) ctl.abort();
        }, finish);
    });
  }
}
