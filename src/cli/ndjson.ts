import { request } from "node:http";
import { BangerError, type ErrorBody } from "../domain/errors.js";

/**
 * POST a JSON body and read an NDJSON answer line by line (POST /v1/images/build). A non-200
 * answer is the daemon's error envelope. `idleMs` bounds a silent connection; aborting
 * `signal` drops the connection, which the daemon takes as a cancel.
 */
export function postNdjson(
  socket: string,
  path: string,
  body: unknown,
  opts: { idleMs: number; signal: AbortSignal; onLine(obj: unknown): void },
): Promise<void> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: socket,
        method: "POST",
        path: `/v1${path}`,
        agent: false,
        signal: opts.signal,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
      },
      (res) => {
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          if (res.statusCode !== 200) return;
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) opts.onLine(JSON.parse(line));
          }
        });
        res.on("error", reject);
        res.on("end", () => {
          if (res.statusCode === 200) return resolve();
          let err: ErrorBody | undefined;
          try {
            err = (JSON.parse(buf) as { error?: ErrorBody }).error;
          } catch {
            // not an envelope
          }
          reject(
            err?.code
              ? new BangerError(err.code, err.message, { hint: err.hint, stage: err.stage })
              : new BangerError("INTERNAL", `bangerd answered ${res.statusCode}`),
          );
        });
      },
    );
    req.setTimeout(opts.idleMs, () => req.destroy(Object.assign(new Error("no answer in time"), { code: "ANSWER_TIMEOUT" })));
    req.on("error", reject);
    req.end(payload);
  });
}
