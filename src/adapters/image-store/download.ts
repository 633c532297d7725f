import { createHash } from "node:crypto";
import { closeSync, createReadStream, openSync, writeSync } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { BangerError } from "../../domain/errors.js";
import { header, transferError, type Http } from "./http.js";

export interface BlobDownload {
  url: string;
  headers?: Record<string, string>;
  /** `sha256:<hex>` the bytes must hash to. */
  digest: string;
  size: number;
  /** Where the bytes collect; kept after a failed transfer so the next attempt sends a Range request. */
  partial: string;
  dest: string;
  signal: AbortSignal;
  /** Transfers tried in this call before giving up (each resumes from the partial file). */
  attempts?: number;
  onProgress?: (bytes: number) => void;
}

export function digestMismatch(what: string, want: string, got: string): BangerError {
  return new BangerError("IMAGE_DIGEST_MISMATCH", `${what}: content hashes to ${got}, expected ${want}`, {
    hint: "the source holds damaged or tampered data; nothing was registered. Push the image again from a good copy, or pull from another source",
  });
}

async function sha256Of(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return `sha256:${h.digest("hex")}`;
}

/** A complete partial becomes `dest` only if it has the size and digest wanted; otherwise it is deleted. */
export async function keepVerified(partial: string, dest: string, digest: string, size: number): Promise<void> {
  const got = await sizeOf(partial);
  if (got !== size) {
    await rm(partial, { force: true });
    throw digestMismatch(`blob ${digest}`, `${size} bytes`, `${got} bytes`);
  }
  const sum = await sha256Of(partial);
  if (sum !== digest) {
    await rm(partial, { force: true });
    throw digestMismatch(`blob ${digest}`, digest, sum);
  }
  await rename(partial, dest);
}

const sizeOf = async (p: string) => (await stat(p).catch(() => undefined))?.size ?? 0;

/**
 * Downloads one blob, resuming from `partial` with `Range: bytes=<have>-` after a cut connection (in this
 * call, up to `attempts` times, or in a later one). The whole file is hashed once it is complete; a
 * mismatch deletes it (bad bytes are never resumed from) and throws IMAGE_DIGEST_MISMATCH. Success renames
 * it to `dest`.
 */
export async function downloadBlob(http: Http, o: BlobDownload): Promise<void> {
  const attempts = o.attempts ?? 4;
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    let have = await sizeOf(o.partial);
    if (have > o.size) {
      await rm(o.partial, { force: true });
      have = 0;
    }
    if (have < o.size) {
      try {
        await transfer(http, o, have);
      } catch (e) {
        if (o.signal.aborted || (e instanceof BangerError && e.code !== "IMAGE_SOURCE_FAILED" && e.code !== "TIMEOUT")) throw e;
        lastError = e;
        continue;
      }
    }
    await keepVerified(o.partial, o.dest, o.digest, o.size);
    return;
  }
  throw lastError instanceof BangerError ? lastError : transferError(lastError, `GET ${o.url}`, o.signal);
}

async function transfer(http: Http, o: BlobDownload, have: number): Promise<void> {
  const res = await http.call("GET", o.url, { signal: o.signal, headers: { ...o.headers, ...(have > 0 ? { range: `bytes=${have}-` } : {}) } });
  if (res.status === 416) {
    // The partial no longer fits what the source has: start over.
    await res.body.dump();
    await rm(o.partial, { force: true });
    throw transferError(new Error("range not satisfiable; restarting"), `GET ${o.url}`, o.signal);
  }
  if (res.status !== 200 && res.status !== 206) {
    const text = (await res.body.text().catch(() => "")).slice(0, 300);
    throw new BangerError("IMAGE_SOURCE_FAILED", `GET ${o.url}: HTTP ${res.status} ${text}`, {
      hint: res.status === 404 ? "the blob is not at the source: push the image there again" : "check the source and its logs",
    });
  }
  // 206 continues the partial; a 200 is the whole blob (the server ignored Range), so the partial starts over.
  const resumed = res.status === 206;
  if (resumed && !String(header(res, "content-range") ?? "").startsWith(`bytes ${have}-`)) {
    await res.body.dump();
    await rm(o.partial, { force: true });
    throw transferError(new Error(`unexpected Content-Range ${header(res, "content-range")}`), `GET ${o.url}`, o.signal);
  }
  let written = resumed ? have : 0;
  // Each chunk goes to disk as it arrives (synchronously, in flowing mode): a stream piped through buffers
  // would lose what it held when the connection breaks, and the next Range request would start short.
  const fd = openSync(o.partial, resumed ? "a" : "w");
  const onAbort = () => res.body.destroy(new Error("cancelled"));
  o.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      res.body.on("data", (chunk: Buffer) => {
        written += chunk.length;
        if (written > o.size) {
          res.body.destroy(
            new BangerError("IMAGE_DIGEST_MISMATCH", `blob ${o.digest}: the source sent more than its ${o.size} bytes`, { hint: "the source is damaged" }),
          );
          return;
        }
        writeSync(fd, chunk);
        o.onProgress?.(written);
      });
      res.body.once("end", resolve);
      res.body.once("error", reject);
    });
  } catch (e) {
    if (e instanceof BangerError && e.code === "IMAGE_DIGEST_MISMATCH") await rm(o.partial, { force: true });
    throw transferError(e, `GET ${o.url}`, o.signal);
  } finally {
    o.signal.removeEventListener("abort", onAbort);
    closeSync(fd);
  }
}
