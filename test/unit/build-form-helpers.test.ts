import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { readNdjson } from "../../src/ui/ndjson.js";
import { sha256Hex, sha256Portable } from "../../src/ui/sha256.js";
import { SseParser } from "../../src/cli/stage-events.js";

describe("web UI build helpers", () => {
  it("hashes like node's sha256, at every padding boundary and for multi-byte text", async () => {
    const enc = new TextEncoder();
    for (const n of [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 1000]) {
      const text = "a".repeat(n);
      expect(sha256Portable(enc.encode(text)), `length ${n}`).toBe(createHash("sha256").update(text).digest("hex"));
    }
    const script = "#!/bin/sh\necho 'héllo wörld ✓'\n";
    expect(sha256Portable(enc.encode(script))).toBe(createHash("sha256").update(script).digest("hex"));
    expect(await sha256Hex(script)).toBe(createHash("sha256").update(script).digest("hex"));
  });

  it("reads NDJSON lines split anywhere across chunks, multi-byte characters included", async () => {
    const lines = [
      { type: "stage", stage: "wait-ssh", status: "start" },
      { type: "output", line: "ünïcode ✓" },
      { type: "result", image: { name: "x" } },
    ];
    const bytes = new TextEncoder().encode(lines.map((l) => JSON.stringify(l)).join("\n"));
    // Chunks of 3 bytes cut through lines and through the UTF-8 sequences of ü and ✓.
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 3) c.enqueue(bytes.slice(i, i + 3));
        c.close();
      },
    });
    const got: unknown[] = [];
    await readNdjson(body, (l) => got.push(l));
    expect(got).toEqual(lines);
  });
});

describe("the CLI's Server-Sent Events parser", () => {
  it("yields event and data per message, across chunk boundaries, skipping comments and CRLFs", () => {
    const text = ': keep-alive\n\nevent: hello\nid: 1\ndata: {"vms":[]}\n\nevent: stage\r\ndata: {"a":1}\r\n\r\ndata: plain\n\n';
    for (let size = 1; size <= 8; size++) {
      const got: [string, string][] = [];
      const p = new SseParser((e, d) => got.push([e, d]));
      for (let i = 0; i < text.length; i += size) p.push(text.slice(i, i + size));
      expect(got, `chunks of ${size}`).toEqual([
        ["hello", '{"vms":[]}'],
        ["stage", '{"a":1}'],
        ["message", "plain"],
      ]);
    }
  });
});
