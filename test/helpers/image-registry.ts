import { spawn, type ChildProcess } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { ExecRunner } from "../../src/adapters/exec/runner.js";
import { Ext4Disks } from "../../src/adapters/disk/disks.js";
import { copyFileReflink, sha256File } from "../../src/adapters/disk/files.js";
import { NodeFiles } from "../../src/adapters/fs/node-files.js";
import { OciImageStore, type OciImageStoreOptions } from "../../src/adapters/image-store/oci-store.js";
import { ImageDistribution } from "../../src/app/image-pull.js";
import { ImageService } from "../../src/app/images.js";
import { world } from "./app-world.js";

export const REGISTRY_BIN = "/usr/bin/docker-registry";

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The CNCF distribution registry (Debian's docker-registry), on 127.0.0.1 with its storage in `dir`. */
export async function startRegistry(dir: string): Promise<{ url: string; host: string; storage: string; stop(): Promise<void> }> {
  const port = await freePort();
  const storage = join(dir, "registry");
  mkdirSync(storage, { recursive: true });
  const cfg = join(dir, "registry.yml");
  writeFileSync(
    cfg,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const proc: ChildProcess = spawn(REGISTRY_BIN, ["serve", cfg], { stdio: "ignore" });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (i > 100 || proc.exitCode !== null) throw new Error(`docker-registry did not come up on ${host}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `oci://${host}`,
    host,
    storage,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => proc.once("exit", r));
      }
    },
  };
}

/** The registry's own file for a blob (to tamper with it as a damaged or malicious store would). */
export const registryBlobPath = (storage: string, digest: string) => {
  const hex = digest.replace("sha256:", "");
  return join(storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
};

export interface CutProxy {
  host: string;
  /** Range headers of the blob GETs it forwarded. */
  ranges: (string | undefined)[];
  /** Blob GETs that were cut. */
  cuts: number;
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of the registry that cuts the first `cutTimes` blob downloads after `afterBytes`
 * bytes of body (connection destroyed), or with `stall` stops sending and holds the connection open.
 */
export async function cuttingProxy(target: string, afterBytes: number, cutTimes: number, stall = false): Promise<CutProxy & { server: Server }> {
  const state = { ranges: [] as (string | undefined)[], cuts: 0 };
  const server = createServer((req, res) => {
    const isBlob = req.method === "GET" && /\/blobs\/sha256:/.test(req.url ?? "");
    if (isBlob) state.ranges.push(req.headers.range);
    const up = httpRequest(`http://${target}${req.url}`, { method: req.method, headers: { ...req.headers, host: target } }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (!isBlob || state.cuts >= cutTimes || Number(ur.headers["content-length"] ?? 0) <= afterBytes) {
        ur.pipe(res);
        return;
      }
      state.cuts++;
      let sent = 0;
      ur.on("data", (c: Buffer) => {
        if (sent >= afterBytes) return;
        const part = c.subarray(0, afterBytes - sent);
        sent += part.length;
        const last = sent >= afterBytes;
        if (last) ur.destroy();
        // Cut only once the bytes have left, so the client really holds `afterBytes` of the body.
        res.write(part, () => {
          if (last && !stall) res.socket?.destroy();
        });
      });
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    server,
    get ranges() {
      return state.ranges;
    },
    get cuts() {
      return state.cuts;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A static file server for an OCI image layout directory. */
export async function serveDir(dir: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = join(dir, decodeURIComponent((req.url ?? "/").split("?")[0]!));
    if (!path.startsWith(dir) || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": statSync(path).size });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * One node's image side: a real SQLite store, real files (cp, sha256), real e2fsprogs checks and the
 * real OCI adapter, in its own state dir. The VM-side ports are app-world's fakes; these tests never boot.
 */
export function imageNode(extraToml = "", store: Partial<OciImageStoreOptions> = {}) {
  const runner = new ExecRunner();
  const w = world(undefined, 0, { disks: new Ext4Disks({ runner }), extraToml });
  const files = new NodeFiles({ copy: (s, dst) => copyFileReflink(s, dst), sha256: sha256File });
  const imageStore = new OciImageStore({ partialsDir: join(w.d.config.pullsDir, "blobs"), chunkBytes: 1024 * 1024, ...store });
  const d = { ...w.d, files, imageStore };
  const images = new ImageService(d);
  return { ...w, d, images, dist: new ImageDistribution(d, images), imageStore };
}
