/** The UI's only way to bangerd: the same /v1 routes as the CLI, with the session's CSRF token on writes. */
export interface ErrorBody {
  code: string;
  message: string;
  hint?: string;
  stage?: string;
  field?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
  ) {
    super(body.message);
  }
}

let csrf: Promise<string> | undefined;

export function token(): Promise<string> {
  csrf ??= fetch("/v1/web/session", { credentials: "same-origin" })
    .then((r) => (r.ok ? (r.json() as Promise<{ csrf: string }>) : Promise.reject(new Error(`session: ${r.status}`))))
    .then((j) => j.csrf)
    .catch((e: unknown) => {
      csrf = undefined;
      throw e;
    });
  return csrf;
}

export async function api<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (method !== "GET") headers["X-CSRF-Token"] = await token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await res.text();
  let json: unknown = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, { code: "INTERNAL", message: `bangerd sent a non-JSON reply (${res.status})` });
  }
  if (!res.ok) {
    const err = (json as { error?: ErrorBody }).error ?? { code: "INTERNAL", message: `HTTP ${res.status}` };
    throw new ApiError(res.status, err);
  }
  return json as T;
}

export const enc = encodeURIComponent;
