import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";

export interface Timed {
  ms: number;
  code: number;
  stdout: string;
  stderr: string;
}

/** Wall time of one process, fork to exit, as a shell would see it. */
export function timeCommand(argv: string[], env: NodeJS.ProcessEnv): Timed {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { env: { ...env, BANGER_TIMING: "1" }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 120_000 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ms, code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** One API call over its own connection (a kept-alive one can be closed by the daemon while spawnSync blocks us); serverMs from the daemon's Server-Timing header when it sends one. */
export function api<T = unknown>(socket: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: T; serverMs?: number }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath: socket, method, path, agent: false, headers: payload ? { "content-type": "application/json" } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const timing = /dur=([\d.]+)/.exec(String(res.headers["server-timing"] ?? ""));
        resolve({
          status: res.statusCode ?? 0,
          json: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as T,
          serverMs: timing ? Number(timing[1]) : undefined,
        });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

export interface Memory {
  rss: number;
  anon: number;
  file: number;
}

/** Resident memory of a process from /proc: all of it, and how much is anonymous (heaps) versus file-backed (code, mapped libraries). */
export function daemonMemory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile") + kb("RssShmem") };
}
