import { ApiError, token, type ErrorBody } from "./api.js";

/** Calls `onLine` with each JSON line of `body` as it arrives; a line split across chunks is joined first. */
export async function readNdjson(body: ReadableStream<Uint8Array>, onLine: (line: unknown) => void): Promise<void> {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const flush = (text: string) => {
    if (text.trim() !== "") onLine(JSON.parse(text));
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      flush(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  flush(buf + dec.decode());
}

/**
 * POST a JSON body to a /v1 route that answers NDJSON (`POST /v1/images/build`), with the
 * session's CSRF token. Input refused before the stream starts comes back as the ordinary error
 * envelope and throws ApiError. Aborting `signal` drops the connection, which bangerd takes as
 * a cancel.
 */
export async function postNdjson(path: string, body: unknown, signal: AbortSignal, onLine: (line: unknown) => void): Promise<void> {
  const res = await fetch(`/v1${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": await token() },
    body: JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (!res.ok || !res.body) {
    const text = await res.text();
    let err: ErrorBody = { code: "INTERNAL", message: `HTTP ${res.status}` };
    try {
      err = (JSON.parse(text) as { error?: ErrorBody }).error ?? err;
    } catch {
      // not the envelope: keep the status line
    }
    throw new ApiError(res.status, err);
  }
  await readNdjson(res.body, onLine);
}
