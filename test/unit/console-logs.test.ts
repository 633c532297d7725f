import { spawn } from "node:child_process";
import { appendFileSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CONSOLE_FILES, FileConsoleLogs } from "../../src/adapters/console/files.js";

let dir: string;
let logs: FileConsoleLogs;
const file = (name: keyof typeof CONSOLE_FILES) => join(dir, CONSOLE_FILES[name]);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "banger-console-"));
  logs = new FileConsoleLogs();
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Reads everything from offset the way `vm logs --follow` does: until offset reaches size. */
async function drain(from: number, chunk = 7): Promise<{ text: string; offset: number }> {
  let offset = from;
  let text = "";
  for (;;) {
    const r = await logs.read(dir, offset, chunk);
    text += r.data;
    offset = r.offset;
    if (r.offset >= r.size) return { text, offset };
  }
}

describe("FileConsoleLogs", () => {
  it("reads nothing, at offset 0, when the VM has no console yet", async () => {
    expect(await logs.read(dir, 0, 100)).toEqual({ offset: 0, size: 0, data: "", start: 0 });
    expect(await logs.tail(dir, 5)).toBe("");
    expect(await logs.rotate(dir, 1)).toBe(false);
  });

  it("rotates only over the cap, keeping the newest cap bytes in console.log.1", async () => {
    writeFileSync(file("current"), "01234567");
    expect(await logs.rotate(dir, 8)).toBe(false);
    appendFileSync(file("current"), "89");
    expect(await logs.rotate(dir, 8)).toBe(true);
    expect(readFileSync(file("rotated"), "utf8")).toBe("23456789");
    expect(statSync(file("current")).size).toBe(0);
    expect(readFileSync(file("base"), "utf8").trim()).toBe("10");
    expect(existsSync(`${file("rotated")}.tmp`)).toBe(false);
    expect(await logs.read(dir, 0, 100)).toEqual({ offset: 10, size: 10, data: "23456789", start: 2 });
  });

  it("serves virtual offsets across the boundary and clamps offsets outside what is stored", async () => {
    writeFileSync(file("current"), "0123456789");
    await logs.rotate(dir, 8);
    appendFileSync(file("current"), "abc");
    expect(await logs.read(dir, 2, 100)).toEqual({ offset: 13, size: 13, data: "23456789abc", start: 2 });
    expect((await logs.read(dir, 6, 3)).data).toBe("678");
    expect(await logs.read(dir, 9, 3)).toEqual({ offset: 12, size: 13, data: "9ab", start: 2 });
    expect(await logs.read(dir, 11, 3)).toEqual({ offset: 13, size: 13, data: "bc", start: 2 });
    // Older than anything kept: served from the oldest byte still there.
    expect(await logs.read(dir, 0, 4)).toEqual({ offset: 6, size: 13, data: "2345", start: 2 });
    expect(await logs.read(dir, 99, 4)).toEqual({ offset: 13, size: 13, data: "", start: 2 });
    expect((await logs.read(dir, Number.NaN, 2)).data).toBe("23");

    // A second rotation replaces .1 and moves the base on by what was copied.
    appendFileSync(file("current"), "defghij");
    expect(await logs.rotate(dir, 8)).toBe(true);
    expect(readFileSync(file("rotated"), "utf8")).toBe("cdefghij");
    appendFileSync(file("current"), "k");
    expect(await logs.read(dir, 0, 100)).toEqual({ offset: 21, size: 21, data: "cdefghijk", start: 12 });
  });

  it("tails across both files", async () => {
    writeFileSync(file("current"), "boot 1\nboot 2\nboot 3\n");
    await logs.rotate(dir, 20);
    appendFileSync(file("current"), "login:\r\n");
    expect(await logs.tail(dir, 3)).toBe("boot 2\nboot 3\nlogin:");
    expect(await logs.tail(dir, 1)).toBe("login:");
  });

  it("keeps a follower in place while an O_APPEND writer goes on across rotations", async () => {
    // The VMM's view: one fd opened for append before any rotation, never reopened.
    const fd = openSync(file("current"), "a");
    let written = "";
    let sinceRotation = "";
    let followed = "";
    let offset = 0;
    try {
      for (let i = 0; i < 400; i++) {
        const line = `line ${i} ${"x".repeat(i % 37)}\n`;
        writeSync(fd, line);
        written += line;
        sinceRotation += line;
        if (i % 25 === 0 && (await logs.rotate(dir, 512))) sinceRotation = "";
        if (i % 10 === 0) {
          const r = await drain(offset);
          followed += r.text;
          offset = r.offset;
        }
      }
    } finally {
      closeSync(fd);
    }
    followed += (await drain(offset)).text;
    expect(followed).toBe(written);
    // Not sparse: after a truncate the writer went on at 0, not at its old offset.
    expect(readFileSync(file("current"), "utf8")).toBe(sinceRotation);
    expect(statSync(file("current")).size).toBe(Buffer.byteLength(sinceRotation));
  });

  it("never duplicates or zero-fills while another process appends continuously", async () => {
    const lines = 5000;
    // Faster than a serial console (115200 baud is about 11 KB/s), so rotations come often.
    const script = `
      const fs = require("node:fs");
      const fd = fs.openSync(process.argv[1], "a");
      let i = 0;
      const burst = () => {
        for (let k = 0; k < 10 && i < ${lines}; k++, i++) fs.writeSync(fd, "seq " + i + "\\n");
        if (i < ${lines}) setTimeout(burst, 1); else fs.closeSync(fd);
      };
      burst();`;
    const child = spawn(process.execPath, ["-e", script, file("current")], { stdio: "ignore" });
    let done = false;
    const exited = new Promise<void>((resolve) =>
      child.on("exit", () => {
        done = true;
        resolve();
      }),
    );
    // Segments split where the follower fell behind a rotation and was moved to the oldest byte kept;
    // such a restart may begin mid-line.
    const segments: string[] = [""];
    let offset = 0;
    let rotations = 0;
    const follow = async () => {
      for (;;) {
        const r = await logs.read(dir, offset, 64 * 1024);
        if (r.start > offset && offset > 0) segments.push("");
        segments[segments.length - 1] += r.data;
        offset = r.offset;
        if (r.offset >= r.size) return;
      }
    };
    while (!done) {
      if (await logs.rotate(dir, 4096)) rotations++;
      await follow();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await exited;
    await follow();
    expect(rotations).toBeGreaterThan(3);

    const seqs = segments.flatMap((seg, i) => {
      const ls = seg.split("\n").filter(Boolean);
      if (i > 0) ls.shift();
      return ls.map((l) => {
        expect(l).toMatch(/^seq \d+$/);
        return Number(l.slice(4));
      });
    });
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]);
    // Lines may go missing (a rotation drops what the follower had not read beyond the newest
    // 4 KiB, and the copy-to-truncate window), but the follower keeps up with the stream.
    expect(seqs.length).toBeGreaterThan(lines / 2);
    expect(seqs.at(-1)).toBeGreaterThan(lines * 0.9);
    for (const f of [file("current"), file("rotated")]) expect(readFileSync(f).includes(0)).toBe(false);
  });
});
