import { open, readFile, rename, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ConsoleChunk, ConsoleLogs } from "../../ports/console.js";
import { lastLines } from "../exec/tail.js";

/** The VMM drivers write `console.log` in the VM dir; the other two files are this adapter's. */
export const CONSOLE_FILES = { current: "console.log", rotated: "console.log.1", base: "console.base" } as const;

const TAIL_BYTES = 16 * 1024;
const COPY_CHUNK = 1024 * 1024;
// Catch-up rounds after the main copy; a guest that out-writes the copy this often just loses the rest.
const CATCH_UP_ROUNDS = 3;

/**
 * Rotation is copy-then-truncate: the VMM holds console.log open with O_APPEND and cannot be
 * told to reopen it, so the file must stay the same inode. After truncation its next write lands
 * at the new end (0). `console.base` holds the virtual offset of console.log's first byte, i.e.
 * every byte rotated out so far; console.log.1 holds the newest part of those.
 */
export class FileConsoleLogs implements ConsoleLogs {
  // Reads and rotations of one dir take turns, so a reader never sees the files mid-rotation.
  private readonly queues = new Map<string, Promise<unknown>>();

  read(dir: string, offset: number, maxBytes: number): Promise<ConsoleChunk> {
    return this.serial(dir, async () => readSpan(dir, await layout(dir), offset, maxBytes));
  }

  tail(dir: string, lines: number): Promise<string> {
    return this.serial(dir, async () => {
      const l = await layout(dir);
      const chunk = await readSpan(dir, l, l.base + l.current - TAIL_BYTES, TAIL_BYTES);
      return lastLines(chunk.data, lines);
    });
  }

  rotate(dir: string, maxBytes: number): Promise<boolean> {
    return this.serial(dir, async () => {
      const cur = join(dir, CONSOLE_FILES.current);
      const size = await sizeOf(cur);
      if (size <= maxBytes) return false;
      const { base } = await layout(dir);
      const tmp = join(dir, `${CONSOLE_FILES.rotated}.tmp`);
      // Only the newest maxBytes are kept: after a long time without rotation (daemon down)
      // console.log may be far over the cap, and .1 must not inherit that.
      let end = await copyRange(cur, tmp, size - maxBytes, size, false);
      // The guest keeps writing during the copy; picking up what arrived shrinks the window in
      // which bytes are lost to the few microseconds between the last stat and the truncate.
      // Bytes written in that window are gone: they were not copied and the truncate drops them.
      // That is accepted because the alternative, pausing the guest's console, is worse than a
      // rare gap in a debug log, and the virtual offsets stay consistent either way: base moves
      // by exactly what was copied.
      for (let i = 0; i < CATCH_UP_ROUNDS; i++) {
        const now = await sizeOf(cur);
        if (now <= end) break;
        end = await copyRange(cur, tmp, end, now, true);
      }
      // Right after the last stat, before the renames, to keep the lossy window short.
      await truncate(cur, 0);
      await rename(tmp, join(dir, CONSOLE_FILES.rotated));
      await writeAtomic(join(dir, CONSOLE_FILES.base), `${base + end}\n`);
      return true;
    });
  }

  private serial<T>(dir: string, fn: () => Promise<T>): Promise<T> {
    const result = (this.queues.get(dir) ?? Promise.resolve()).then(fn);
    const settled = result.catch(() => undefined);
    this.queues.set(dir, settled);
    void settled.then(() => {
      if (this.queues.get(dir) === settled) this.queues.delete(dir);
    });
    return result;
  }
}

interface Layout {
  /** Virtual offset of console.log's first byte. */
  base: number;
  rotated: number;
  current: number;
}

async function layout(dir: string): Promise<Layout> {
  const [rawBase, rotated, current] = await Promise.all([
    readFile(join(dir, CONSOLE_FILES.base), "utf8").catch(() => "0"),
    sizeOf(join(dir, CONSOLE_FILES.rotated)),
    sizeOf(join(dir, CONSOLE_FILES.current)),
  ]);
  const parsed = Number.parseInt(rawBase.trim(), 10);
  // A lost or damaged base file must not put the stream's start below 0.
  const base = Math.max(Number.isSafeInteger(parsed) ? parsed : 0, rotated);
  return { base, rotated, current };
}

async function readSpan(dir: string, l: Layout, offset: number, maxBytes: number): Promise<ConsoleChunk> {
  const start = l.base - l.rotated;
  const end = l.base + l.current;
  let pos = Number.isFinite(offset) ? Math.min(Math.max(Math.trunc(offset), start), end) : start;
  let room = Math.max(0, Math.trunc(maxBytes));
  const parts: Buffer[] = [];
  if (pos < l.base && room > 0) {
    const b = await readAt(join(dir, CONSOLE_FILES.rotated), pos - start, Math.min(room, l.base - pos));
    parts.push(b);
    pos += b.length;
    room -= b.length;
  }
  // A short read of .1 (replaced underneath by hand) must not splice in bytes from the wrong place.
  if (pos >= l.base && pos < end && room > 0) {
    const b = await readAt(join(dir, CONSOLE_FILES.current), pos - l.base, Math.min(room, end - pos));
    parts.push(b);
    pos += b.length;
  }
  return { offset: pos, size: end, data: Buffer.concat(parts).toString("utf8"), start };
}

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const fh = await open(path, "r").catch(() => undefined);
  if (!fh) return Buffer.alloc(0);
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Copies bytes [from, to) of src to dst (appending or replacing); returns where it stopped in src. */
async function copyRange(src: string, dst: string, from: number, to: number, append: boolean): Promise<number> {
  const input = await open(src, "r");
  const output = await open(dst, append ? "a" : "w").catch(async (e: unknown) => {
    await input.close();
    throw e;
  });
  try {
    const buf = Buffer.alloc(Math.min(COPY_CHUNK, Math.max(1, to - from)));
    let pos = from;
    while (pos < to) {
      const { bytesRead } = await input.read(buf, 0, Math.min(buf.length, to - pos), pos);
      if (bytesRead === 0) break;
      await output.write(buf, 0, bytesRead);
      pos += bytesRead;
    }
    return pos;
  } finally {
    await Promise.all([input.close(), output.close()]);
  }
}

async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.size,
    () => 0,
  );
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}
