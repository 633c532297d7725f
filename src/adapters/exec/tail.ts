import { open } from "node:fs/promises";

/** Last `lines` lines of a log file, reading at most the final `maxBytes`; "" when unreadable. */
export async function fileTail(path: string, lines: number, maxBytes = 16 * 1024): Promise<string> {
  try {
    const fh = await open(path, "r");
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, maxBytes);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      return lastLines(buf.toString("utf8"), lines);
    } finally {
      await fh.close();
    }
  } catch {
    return "";
  }
}

/** Last `lines` lines of log text; serial consoles write CRLF. */
export function lastLines(text: string, lines: number): string {
  return text.replace(/\r/g, "").trimEnd().split("\n").slice(-lines).join("\n").trim();
}
