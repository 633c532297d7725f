import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ChecksumError, fetchVerified } from "../../images/lib/fetch.js";

// A loopback server whose behaviour each test scripts per request.
const body = randomBytes(300_000);
const sha = createHash("sha256").update(body).digest("hex");
type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;
let handler: Handler;
let seen: { range?: string }[] = [];
let server: Server;
let base: string;
const dir = mkdtempSync(join(tmpdir(), "banger-fetch-"));
const logs: string[] = [];
const log = (l: string) => logs.push(l);

function serveRange(req: IncomingMessage, res: ServerResponse): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const from = m ? Number(m[1]) : 0;
  res.writeHead(m ? 206 : 200, { "content-length": body.length - from });
  res.end(body.subarray(from));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ range: req.headers.range });
    handler(req, res, seen.length);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  seen = [];
  logs.length = 0;
});

describe("fetchVerified: downloads into a cache only what matches the pinned sha256", () => {
  it("downloads, verifies, reports progress, and is a cache hit the second time", async () => {
    handler = (req, res) => serveRange(req, res);
    const dest = join(dir, "ok", "mini.tar.gz");
    const r = await fetchVerified({ source: `${base}/mini.tar.gz`, dest, sha256: sha, log });
    expect(r).toMatchObject({ cached: false, bytes: body.length, attempts: 1 });
    expect(readFileSync(dest).equals(body)).toBe(true);
    expect(logs.at(-1)).toMatch(/mini\.tar\.gz: 293 KiB \/ 293 KiB 100% at .*\/s/);
    const again = await fetchVerified({ source: `${base}/mini.tar.gz`, dest, sha256: sha, log });
    expect(again.cached).toBe(true);
    expect(seen).toHaveLength(1);
  });

  it("a mismatch names the file, the expected and the actual hash, and caches nothing", async () => {
    handler = (req, res) => serveRange(req, res);
    const dest = join(dir, "bad", "mini.tar.gz");
    const wrong = "0".repeat(64);
    const err = await fetchVerified({ source: `${base}/mini.tar.gz`, dest, sha256: wrong, log }).catch((e) => e);
    expect(err).toBeInstanceOf(ChecksumError);
    expect(err.message).toBe(`checksum mismatch for ${base}/mini.tar.gz: expected sha256 ${wrong}, actual ${sha}`);
    expect(existsSync(dest)).toBe(false);
    expect(existsSync(`${dest}.partial`)).toBe(false);
  });

  it("a truncated transfer is resumed with a Range request", async () => {
    handler = (req, res, n) => {
      if (n === 1) {
        res.writeHead(200, { "content-length": body.length });
        res.write(body.subarray(0, 100_000));
        setTimeout(() => res.socket?.destroy(), 20);
      } else serveRange(req, res);
    };
    const dest = join(dir, "trunc", "mini.tar.gz");
    const r = await fetchVerified({ source: `${base}/mini.tar.gz`, dest, sha256: sha, log, backoffMs: 10 });
    expect(r.attempts).toBe(2);
    expect(seen[1].range).toBe("bytes=100000-");
    expect(readFileSync(dest).equals(body)).toBe(true);
    expect(logs.join("\n")).toMatch(/retrying in .* \(resuming at 98 KiB\)/);
  });

  it("retries server errors with backoff, then gives up with the last error", async () => {
    handler = (req, res, n) => (n < 3 ? (res.writeHead(503), res.end()) : serveRange(req, res));
    const dest = join(dir, "retry", "mini.tar.gz");
    expect((await fetchVerified({ source: `${base}/x`, dest, sha256: sha, log, backoffMs: 10 })).attempts).toBe(3);
    handler = (_req, res) => (res.writeHead(404), res.end());
    const gone = join(dir, "gone", "mini.tar.gz");
    await expect(fetchVerified({ source: `${base}/missing`, dest: gone, sha256: sha, log, retries: 2, backoffMs: 10 })).rejects.toThrow(
      /mini\.tar\.gz: GET .*\/missing: HTTP 404 \(after 3 attempts\)/,
    );
    expect(existsSync(gone)).toBe(false);
  });

  it("replaces a corrupted cached copy, and copies local sources through the same check", async () => {
    const src = join(dir, "local.bin");
    writeFileSync(src, body);
    const dest = join(dir, "local", "mini.tar.gz");
    await fetchVerified({ source: src, dest, sha256: sha, log });
    writeFileSync(dest, "corrupted");
    const r = await fetchVerified({ source: src, dest, sha256: sha, log });
    expect(r.cached).toBe(false);
    expect(logs.join("\n")).toMatch(/cached copy has sha256 .*, expected .*; fetching again/);
    await expect(fetchVerified({ source: join(dir, "absent"), dest: join(dir, "a", "b"), sha256: sha, log })).rejects.toThrow(/absent: no such file/);
  });
});
