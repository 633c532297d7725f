import { Pool } from "undici";

export interface ApiReply<T = any> {
  status: number;
  body: T;
}

/**
 * Raw calls to bangerd's socket from the test process. The CLI adds a
 * process start per call; races need requests that really arrive together.
 */
export function apiClient(socket: string) {
  // One connection per request in flight: a single connection would queue them.
  const client = new Pool("http://bangerd", { socketPath: socket, connections: 128 });
  return {
    async call<T = any>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown, signal?: AbortSignal): Promise<ApiReply<T>> {
      const res = await client.request({
        method,
        path: `/v1${path}`,
        signal,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: 600_000,
        bodyTimeout: 600_000,
      });
      const text = await res.body.text();
      return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
    },
    close: () => client.close(),
  };
}
