// The three PATCH content types the real server takes. Strategic merge reads each list's strategy and merge key
// from the same OpenAPI document the fake validates against (x-kubernetes-patch-strategy/-merge-key), as
// apimachinery's strategicpatch does from the Go struct tags those extensions come from.
import fastJsonPatch from "fast-json-patch";
import { type SwaggerSchemas } from "./schema.js";
import { ApiError, badRequest } from "./status.js";

export const MERGE = "application/merge-patch+json";
export const STRATEGIC = "application/strategic-merge-patch+json";
export const JSON_PATCH = "application/json-patch+json";
export const APPLY = "application/apply-patch+yaml";

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);

/** RFC 7396: objects merge key by key, null deletes, anything else (arrays too) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Record<string, unknown> = isObj(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch");
  try {
    return fastJsonPatch.applyPatch(clone(target), ops as fastJsonPatch.Operation[], true, false).newDocument;
  } catch (e) {
    // The real server answers a failed test op or a missing path with 422 (the patch cannot apply), not 400.
    throw new ApiError(422, "Invalid", `the server rejected our request due to an error in our request: ${(e as Error).message}`);
  }
}

type Schema = Record<string, any>;

function resolveRef(schemas: SwaggerSchemas, s: Schema | undefined): Schema | undefined {
  let cur = s;
  for (let i = 0; cur && cur.$ref && i < 10; i++) cur = schemas.definitions[String(cur.$ref).replace("#/definitions/", "")] as Schema;
  if (cur && Array.isArray(cur.allOf) && cur.allOf.length === 1) return resolveRef(schemas, cur.allOf[0] as Schema);
  return cur;
}

/** Strategic merge for built-in kinds; definition is the kind's swagger definition name. */
export function strategicMerge(schemas: SwaggerSchemas, definition: string, target: unknown, patch: unknown): unknown {
  return smpObject(schemas, schemas.definitions[definition] as Schema, target, patch);
}

function smpObject(schemas: SwaggerSchemas, schema: Schema | undefined, target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  if (patch.$patch === "replace") {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === "delete") return undefined;
  const out: Record<string, unknown> = isObj(target) ? clone(target) : {};
  const props = (resolveRef(schemas, schema)?.properties ?? {}) as Record<string, Schema>;
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith("$setElementOrder/") || k === "$retainKeys" || k === "$patch") continue;
    if (k.startsWith("$deleteFromPrimitiveList/")) {
      const field = k.slice("$deleteFromPrimitiveList/".length);
      if (Array.isArray(out[field]) && Array.isArray(v)) out[field] = (out[field] as unknown[]).filter((x) => !v.includes(x));
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const prop = props[k] as Schema | undefined;
    const resolved = resolveRef(schemas, prop);
    if (Array.isArray(v) && prop?.["x-kubernetes-patch-strategy"]?.includes("merge")) {
      out[k] = smpList(schemas, resolved?.items as Schema | undefined, prop["x-kubernetes-patch-merge-key"] as string | undefined, out[k], v);
    } else if (isObj(v)) {
      // A map (additionalProperties) merges per key like an object without a schema.
      const sub = resolved?.properties ? resolved : resolved?.additionalProperties && isObj(resolved.additionalProperties) ? undefined : resolved;
      const merged = smpObject(schemas, sub, out[k], v);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else {
      out[k] = clone(v);
    }
  }
  return out;
}

function smpList(schemas: SwaggerSchemas, items: Schema | undefined, mergeKey: string | undefined, target: unknown, patch: unknown[]): unknown[] {
  const base = Array.isArray(target) ? clone(target) : [];
  if (!mergeKey) {
    // A list of scalars with strategy merge (finalizers): a set union that keeps the existing order.
    for (const v of patch) if (!base.some((b) => JSON.stringify(b) === JSON.stringify(v))) base.push(clone(v));
    return base;
  }
  for (const el of patch) {
    if (!isObj(el)) throw badRequest(`strategic merge patch: element of a list merged by ${mergeKey} is not an object`);
    const idx = base.findIndex((b) => isObj(b) && b[mergeKey] === el[mergeKey]);
    if (el.$patch === "delete") {
      if (idx >= 0) base.splice(idx, 1);
      continue;
    }
    if (idx >= 0) base[idx] = smpObject(schemas, items, base[idx], el);
    else base.push(smpObject(schemas, items, undefined, el));
  }
  return base;
}
