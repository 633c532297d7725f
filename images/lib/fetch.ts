/**
 * Download (or copy) one file to a cache path and verify its sha256 before it is
 * allowed there. A half-finished download stays as `<dest>.partial` and is resumed
 * with an HTTP Range request; a file whose hash is wrong is deleted, never cached.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, existsSync, renameSync, statSync, unlinkSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { setTimeout as sleep } from "node:timers/promises";

export class ChecksumError extends Error {
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`checksum mismatch for ${file}: expected sha256 ${expected}, actual ${actual}`);
  }
}

export interface FetchOptions {
  /** http(s) URL or a local path. */
  source: string;
  dest: string;
  sha256: string;
  retries?: number;
  /** ms before the first retry; doubled each time. */
  backoffMs?: number;
  /** Progress line sink; defaults to stderr. */
  log?: (line: string) => void;
  /** Per-attempt ceiling. */
  timeoutMs?: number;
}

export interface FetchResult {
  dest: string;
  cached: boolean;
  bytes: number;
  attempts: number;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  await pipeline(createReadStream(path), h);
  return h.digest("hex");
}

const human = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`);

function progressReporter(log: (l: string) => void, name: string, total: number | undefined, start: number) {
  const t0 = Date.now();
  let last = 0;
  const tty = process.stderr.isTTY && log === defaultLog;
  return {
    tick(done: number, final = false) {
      const now = Date.now();
      if (!final && now - last < (tty ? 200 : 2000)) return;
      last = now;
      const rate = (done - start) / Math.max(0.001, (now - t0) / 1000);
      const pct = total ? ` ${((100 * done) / total).toFixed(0).padStart(3)}%` : "";
      const line = `${name}: ${human(done)}${total ? ` / ${human(total)}` : ""}${pct} at ${human(rate)}/s`;
      if (tty) process.stderr.write(`\r           ${line}\x1b[K${final ? "\n" : ""}`);
      else log(line);
    },
  };
}

const defaultLog = (l: string) => process.stderr.write(`           ${l}\n`);

async function httpAttempt(url: string, partial: string, name: string, log: (l: string) => void, timeoutMs: number): Promise<void> {
  const have = existsSync(partial) ? statSync(partial).size : 0;
  const res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: AbortSignal.timeout(timeoutMs) });
  if (res.status === 416 && have > 0) return; // already complete; the hash decides
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const resumed = res.status === 206 && have > 0;
  if (have > 0 && !resumed) log(`${name}: server ignored the range request, starting over`);
  const start = resumed ? have : 0;
  const len = Number(res.headers.get("content-length") ?? NaN);
  const total = Number.isFinite(len) ? start + len : undefined;
  const progress = progressReporter(log, name, total, start);
  let done = start;
  const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  body.on("data", (c: Buffer) => {
    done += c.length;
    progress.tick(done);
  });
  await pipeline(body, createWriteStream(partial, { flags: resumed ? "a" : "w" }));
  progress.tick(done, true);
  if (total !== undefined && done !== total) throw new Error(`GET ${url}: got ${done} of ${total} bytes`);
}

export async function fetchVerified(o: FetchOptions): Promise<FetchResult> {
  const log = o.log ?? defaultLog;
  const name = o.dest.split("/").pop()!;
  const expected = o.sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(expected)) throw new Error(`bad pinned sha256 for ${name}: ${o.sha256}`);
  await mkdir(dirname(o.dest), { recursive: true });
  if (existsSync(o.dest)) {
    const got = await sha256File(o.dest);
    if (got === expected) return { dest: o.dest, cached: true, bytes: statSync(o.dest).size, attempts: 0 };
    log(`${name}: cached copy has sha256 ${got}, expected ${expected}; fetching again`);
    unlinkSync(o.dest);
  }
  const partial = `${o.dest}.partial`;
  const http = /^https?:\/\//i.test(o.source);
  const retries = o.retries ?? 4;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      if (http) await httpAttempt(o.source, partial, name, log, o.timeoutMs ?? 600_000);
      else {
        if (!existsSync(o.source)) throw Object.assign(new Error(`${o.source}: no such file`), { fatal: true });
        await copyFile(o.source, partial);
      }
      break;
    } catch (e) {
      const err = e as Error & { fatal?: boolean };
      if (err.fatal || attempts > retries) {
        throw new Error(`${name}: ${err.message}${attempts > 1 ? ` (after ${attempts} attempts)` : ""}`);
      }
      const wait = (o.backoffMs ?? 1000) * 2 ** (attempts - 1);
      log(`${name}: ${err.message}; retrying in ${(wait / 1000).toFixed(1)} s (resuming at ${existsSync(partial) ? human(statSync(partial).size) : "0"})`);
      await sleep(wait);
    }
  }
  const actual = await sha256File(partial);
  if (actual !== expected) {
    unlinkSync(partial);
    throw new ChecksumError(o.source, expected, actual);
  }
  renameSync(partial, o.dest);
  return { dest: o.dest, cached: false, bytes: statSync(o.dest).size, attempts };
}
