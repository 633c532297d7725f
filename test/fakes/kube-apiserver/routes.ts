// Maps REST paths and verbs onto the Api, as the real server lays them out:
// /api/v1/[namespaces/{ns}/]{plural}[/{name}[/{subresource}]] and /apis/{group}/{version}/... likewise.
import { type IncomingMessage, type ServerResponse } from "node:http";
import { type Api, type DeleteOpts, type Propagation } from "./api.js";
import { DELETE_OPTIONS_DEFINITION } from "./resources.js";
import { SelectorError, fieldSelector, labelSelector } from "./selectors.js";
import { ApiError, badRequest, methodNotAllowed, notFound } from "./status.js";
import { type ResourceType } from "./types.js";
import { type FieldValidation, type WriteCtx } from "./validate.js";
import { type Watches } from "./watch.js";

export interface Target {
  rt: ResourceType;
  ns?: string;
  name?: string;
  sub?: string;
}

/** Resolves a resource path; undefined when it is not one (discovery, hooks, or unknown). */
export function resolve(api: Api, path: string): Target | undefined {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === "api" && parts.length >= 3) [group, version, rest] = ["", parts[1], parts.slice(2)];
  else if (parts[0] === "apis" && parts.length >= 4) [group, version, rest] = [parts[1], parts[2], parts.slice(3)];
  else return undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    const rt = api.registry.find(group, version, rest[2]);
    if (rt?.namespaced) return { rt, ns: rest[1], name: rest[3], sub: rest[4] };
    if (rt || rest.length > 3) throw notFound(group, rest[2], rest[3] ?? "");
  }
  const rt = api.registry.find(group, version, rest[0]);
  if (!rt || rest.length > 3) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
  return { rt, name: rest[1], sub: rest[2] };
}

export async function readBody(req: IncomingMessage, limit = 3 * 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    // The real server caps request bodies at 3 MiB.
    if (size > limit) throw new ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728");
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(e as Error).message}`);
  }
}

function writeCtx(q: URLSearchParams): WriteCtx {
  const fv = q.get("fieldValidation") ?? "Strict";
  if (!["Strict", "Warn", "Ignore"].includes(fv)) throw badRequest(`fieldValidation must be one of "Ignore", "Warn" or "Strict", got "${fv}"`);
  if (q.get("dryRun")) throw badRequest("dryRun is not supported by this fake API server");
  return { fieldValidation: fv as FieldValidation, warnings: [] };
}

function deleteOpts(q: URLSearchParams, body: unknown, api: Api): DeleteOpts {
  const b = (body ?? {}) as DeleteOpts & { kind?: string; apiVersion?: string };
  if (body !== undefined) {
    const r = api.swagger.check(DELETE_OPTIONS_DEFINITION, body);
    if (r.unknown.length) throw badRequest(`strict decoding error: ${r.unknown.map((f) => `unknown field "${f}"`).join(", ")}`);
    if (r.causes.length) throw badRequest(r.causes.map((c) => `${c.field}: ${c.message}`).join(", "));
  }
  const policy = (q.get("propagationPolicy") ?? b.propagationPolicy) as Propagation | undefined;
  if (policy && !["Background", "Foreground", "Orphan"].includes(policy)) throw badRequest(`propagationPolicy: Unsupported value: "${String(policy)}"`);
  return { propagationPolicy: policy, preconditions: b.preconditions };
}

export interface Reply {
  code: number;
  body: unknown;
  warnings: string[];
}

export interface RouteOpts {
  bookmarkIntervalMs: number;
  defaultWatchTimeoutSeconds: number;
}

/** Serves one resource request; returns undefined when it streamed a watch itself. */
export async function route(
  api: Api,
  watches: Watches,
  t: Target,
  req: IncomingMessage,
  res: ServerResponse,
  q: URLSearchParams,
  o: RouteOpts,
): Promise<Reply | undefined> {
  const { rt, ns, name, sub } = t;
  const method = req.method ?? "GET";
  const ok = (body: unknown, code = 200, warnings: string[] = []): Reply => ({ code, body, warnings });
  const ctype = (req.headers["content-type"] ?? "application/json").split(";")[0].trim();
  const jsonOnly = () => {
    if (ctype !== "application/json")
      throw new ApiError(415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: application/json`);
  };
  if (!name) {
    if (method === "GET") {
      let label, field;
      try {
        label = labelSelector(q.get("labelSelector"));
        field = fieldSelector(q.get("fieldSelector"), rt.kind);
      } catch (e) {
        if (e instanceof SelectorError) throw badRequest(e.message);
        throw e;
      }
      const w = q.get("watch");
      if (w === "1" || w === "true") {
        const timeout = Number(q.get("timeoutSeconds") ?? o.defaultWatchTimeoutSeconds);
        const allow = q.get("allowWatchBookmarks");
        if (q.get("sendInitialEvents") === "true") throw badRequest("sendInitialEvents (watch-list) is not supported by this fake API server");
        watches.serve(
          {
            rt,
            ns,
            match: (x) => label(x) && field(x),
            resourceVersion: q.get("resourceVersion"),
            bookmarks: allow === "true" || allow === "1",
            timeoutSeconds: timeout,
            bookmarkIntervalMs: o.bookmarkIntervalMs,
          },
          res,
        );
        return undefined;
      }
      const limit = q.get("limit") ? Number(q.get("limit")) : undefined;
      return ok(api.list(rt, ns, { label, field, limit, continueToken: q.get("continue") ?? undefined }));
    }
    if (method === "POST") {
      if (rt.namespaced && ns === undefined) throw methodNotAllowed(`the server does not allow this method on the requested resource`);
      jsonOnly();
      const ctx = writeCtx(q);
      return ok(api.create(rt, ns, await readBody(req), ctx), 201, ctx.warnings);
    }
    throw methodNotAllowed("the server does not allow this method on the requested resource");
  }
  if (sub === "binding" && rt.kind === "Pod" && method === "POST") {
    jsonOnly();
    const ctx = writeCtx(q);
    return ok(api.bind(ns!, name, await readBody(req), ctx), 201);
  }
  if (sub !== undefined && (sub !== "status" || !rt.statusSubresource)) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
  const status = sub === "status" ? "status" : undefined;
  switch (method) {
    case "GET":
      return ok(api.get(rt, ns, name));
    case "PUT": {
      jsonOnly();
      const ctx = writeCtx(q);
      return ok(api.update(rt, ns, name, await readBody(req), ctx, status), 200, ctx.warnings);
    }
    case "PATCH": {
      const ctx = writeCtx(q);
      return ok(api.patch(rt, ns, name, ctype, await readBody(req), ctx, status), 200, ctx.warnings);
    }
    case "DELETE": {
      if (status || rt.kind === "Namespace") throw methodNotAllowed("the server does not allow this method on the requested resource");
      return ok(api.delete(rt, ns, name, deleteOpts(q, await readBody(req), api)));
    }
    default:
      throw methodNotAllowed("the server does not allow this method on the requested resource");
  }
}
