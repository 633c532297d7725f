import type { Context, Hono, MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import { ROOT_CALLER, requireMember, type Caller } from "../domain/caller.js";
import type { MetricsExposition, RequestMetrics } from "../ports/metrics.js";
import { errorResponse } from "./errors.js";

export interface MetricsAccess {
  identify(env: unknown): Promise<Caller>;
  apiGroup: { name: string; gid?: number };
}

/**
 * Times every request on the app it is mounted on. The label is the pattern of the route that
 * answered (`/v1/vms/:name`), so a VM's name never becomes a series; a request no route matched is
 * labelled by the catch-all middleware's pattern.
 */
export function requestTiming(metrics: RequestMetrics): MiddlewareHandler {
  return async (c, next) => {
    const t0 = performance.now();
    try {
      await next();
    } finally {
      metrics.request(routePath(c), c.req.method, c.res.status, (performance.now() - t0) / 1000);
    }
  };
}

/**
 * `GET /metrics`, the Prometheus text format. On the socket it follows the API's first rule:
 * root and members of the API group, who may list every VM anyway; the metrics hold counts only,
 * never a VM's name or owner, so nothing is shown that `banger vm ls` would not.
 */
export function metricsRoute(app: Hono, exposition: MetricsExposition, access?: MetricsAccess): void {
  app.get("/metrics", async (c: Context) => {
    try {
      const caller = access ? await access.identify(c.env) : ROOT_CALLER;
      if (access) requireMember(caller, access.apiGroup.gid, access.apiGroup.name);
      const { contentType, body } = await exposition.render();
      return c.body(body, 200, { "Content-Type": contentType });
    } catch (e) {
      return errorResponse(c, e);
    }
  });
}
