import { createInterface } from "node:readline";
import type { Duplex } from "node:stream";
import type { ReadyEvent } from "../../ports/channel.js";

/** The lines of an open READY stream as events; leaving the iteration closes the stream. */
export async function* readyEvents(s: Duplex): AsyncGenerator<ReadyEvent> {
  let failure: Error | undefined;
  s.once("error", (e) => (failure = e));
  const lines = createInterface({ input: s, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      const m = /^LISTEN (\d{1,5})$/.exec(line);
      if (m) yield { kind: "listen", port: Number(m[1]) };
      else if (line === "READY") yield { kind: "ready" };
    }
    if (failure) throw failure;
  } finally {
    lines.close();
    s.destroy();
  }
}
