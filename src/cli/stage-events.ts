import { request, type ClientRequest } from "node:http";
import type { LifecycleEvent, Vm } from "../domain/types.js";

/** How long to wait for the event stream's `hello` before falling back to polling. */
const HELLO_MS = 3_000;
/**
 * After the request's answer the operation's last stage events (a failure's undos) can arrive
 * just behind it, and a failed create sends no `total`: wait for a quiet spell, within a bound.
 */
const QUIET_MS = 300;
const TAIL_MS = 1_500;

/** Splits a Server-Sent Events byte stream into (event, data) messages; feed it chunks as they arrive. */
export class SseParser {
  private buf = "";
  /** A chunk's final CR, held back: it may be the first half of a CRLF split across chunks. */
  private cr = false;
  constructor(private readonly onMessage: (event: string, data: string) => void) {}

  push(chunk: string): void {
    let raw = (this.cr ? "\r" : "") + chunk;
    this.cr = raw.endsWith("\r");
    if (this.cr) raw = raw.slice(0, -1);
    this.buf += raw.replace(/\r\n?/g, "\n");
    let end: number;
    while ((end = this.buf.indexOf("\n\n")) >= 0) {
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const key = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (key === "event") event = value;
        else if (key === "data") data.push(value);
      }
      if (data.length) this.onMessage(event, data.join("\n"));
    }
  }
}

export interface StageFeed {
  /** The VM the operation is about, once known (a generated name is learnt from its first `vm` event). */
  name(): string | undefined;
  /** Waits briefly for the operation's closing `total`, then closes the stream. */
  close(): Promise<void>;
}

/**
 * Follows one VM operation's stages on `GET /v1/events` (pushed as bangerd records them) and
 * hands each finished stage to `print`. Resolves once the stream's `hello` arrived, so nothing
 * of an operation started after it is missed; undefined when the stream cannot be opened (the
 * caller then polls the VM's events instead).
 */
export function openStageFeed(socket: string, op: string, name: string | undefined, print: (e: LifecycleEvent) => void): Promise<StageFeed | undefined> {
  return new Promise((resolve) => {
    let known: Set<string> | undefined;
    let vmName = name;
    let req: ClientRequest | undefined;
    let ended!: () => void;
    const over = new Promise<void>((r) => (ended = r));
    const seen = new Set<string>();
    let lastAt = 0;
    const feed: StageFeed = {
      name: () => vmName,
      async close() {
        const until = Date.now() + TAIL_MS;
        const quiet = async () => {
          while (Date.now() < until && Date.now() - lastAt < QUIET_MS) await new Promise((r) => setTimeout(r, 50));
        };
        lastAt = Math.max(lastAt, Date.now());
        await Promise.race([over, quiet()]);
        req?.destroy();
      },
    };
    const hello = setTimeout(() => {
      req?.destroy();
      resolve(undefined);
    }, HELLO_MS);
    const parser = new SseParser((event, data) => {
      const msg = JSON.parse(data) as { vms?: Vm[]; vm?: Vm; event?: LifecycleEvent };
      if (event === "hello") {
        known = new Set((msg.vms ?? []).map((v) => v.name));
        clearTimeout(hello);
        resolve(feed);
      } else if (event === "vm" && !vmName && op === "create" && msg.vm && known && !known.has(msg.vm.name) && msg.vm.state === "creating") {
        // A generated name: the first VM that appears in `creating` after the request began.
        vmName = msg.vm.name;
      } else if (event === "stage" && msg.event && msg.event.op === op && msg.event.vmName === vmName) {
        const e = msg.event;
        lastAt = Date.now();
        if (e.stage === "total") return ended();
        const key = `${e.opId}:${e.stage}@${e.startedAt}`;
        if (seen.has(key)) return;
        seen.add(key);
        print(e);
      }
    });
    req = request({ socketPath: socket, path: "/v1/events", agent: false, headers: { accept: "text/event-stream" } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        clearTimeout(hello);
        return resolve(undefined);
      }
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => parser.push(chunk));
      res.on("end", ended);
      res.on("error", ended);
    });
    req.on("error", () => {
      clearTimeout(hello);
      ended();
      resolve(undefined);
    });
    req.end();
  });
}
