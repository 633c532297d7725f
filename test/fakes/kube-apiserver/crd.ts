// Custom resources are checked against their CRD's openAPIV3Schema the way the real server treats a structural
// schema: unknown fields are an error (Strict; the real default prunes them) unless x-kubernetes-preserve-unknown-fields,
// x-kubernetes-int-or-string takes either, nullable allows null, and defaults are applied. metadata is checked against
// ObjectMeta from the Kubernetes document, as the real server does whatever the CRD says about it.
import { type ValidateFunction } from "ajv";
import { type Cause, type CheckResult, newAjv, toCheckResult } from "./schema.js";
import { type KObj } from "./types.js";

type S = Record<string, any>;

function toAjv(node: S): S {
  const out: S = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "properties") out.properties = Object.fromEntries(Object.entries(v as S).map(([pk, pv]) => [pk, toAjv(pv as S)]));
    else if (k === "items" && v && typeof v === "object") out.items = toAjv(v as S);
    else if (k === "additionalProperties" && v && typeof v === "object") out.additionalProperties = toAjv(v as S);
    else if (["allOf", "anyOf", "oneOf"].includes(k)) out[k] = (v as S[]).map(toAjv);
    else if (k === "not") out.not = toAjv(v as S);
    else if (!k.startsWith("x-kubernetes-") && k !== "nullable" && k !== "format") out[k] = v;
  }
  if (node["x-kubernetes-int-or-string"]) {
    delete out.type;
    out.anyOf = [...(out.anyOf ?? []), { type: "integer" }, { type: "string" }];
  }
  const preserve = Boolean(node["x-kubernetes-preserve-unknown-fields"]) || Boolean(node["x-kubernetes-embedded-resource"]);
  if (node.type === "object" && !preserve && out.additionalProperties === undefined) out.additionalProperties = false;
  if (node.nullable && typeof out.type === "string") out.type = [out.type, "null"];
  return out;
}

/** Checks the CRD rules the real server enforces beyond the CRD's own swagger definition. */
export function crdCauses(crd: KObj): Cause[] {
  const causes: Cause[] = [];
  if (!crd.spec) return [{ reason: "FieldValueRequired", field: "spec", message: "Required value" }];
  const spec = crd.spec as { group: string; names: { plural: string }; versions: { name: string; storage: boolean; schema?: { openAPIV3Schema?: S } }[] };
  const want = `${spec.names.plural}.${spec.group}`;
  if (crd.metadata.name !== want)
    causes.push({
      reason: "FieldValueInvalid",
      field: "metadata.name",
      message: `Invalid value: "${crd.metadata.name}": must be spec.names.plural+"."+spec.group`,
    });
  if (spec.versions.filter((v) => v.storage).length !== 1)
    causes.push({ reason: "FieldValueInvalid", field: "spec.versions", message: "Invalid value: must have exactly one version marked as storage version" });
  spec.versions.forEach((v, i) => {
    const root = v.schema?.openAPIV3Schema;
    if (!root)
      causes.push({ reason: "FieldValueRequired", field: `spec.versions[${i}].schema.openAPIV3Schema`, message: "Required value: schemas are required" });
    else if (root.type !== "object")
      causes.push({
        reason: "FieldValueRequired",
        field: `spec.versions[${i}].schema.openAPIV3Schema.type`,
        message: "Required value: must not be empty at the root",
      });
  });
  return causes;
}

export class CustomSchemas {
  private readonly ajv = newAjv({ useDefaults: true });
  private readonly cache = new WeakMap<object, ValidateFunction>();

  /** Validates (and defaults, in place) everything of obj but metadata, apiVersion and kind. */
  check(schema: S | undefined, obj: KObj): CheckResult {
    if (!schema) return { unknown: [], causes: [] };
    let fn = this.cache.get(schema);
    if (!fn) {
      const root = toAjv(schema);
      const props = { ...(root.properties ?? {}) };
      for (const k of ["apiVersion", "kind", "metadata"]) props[k] = {};
      root.properties = props;
      fn = this.ajv.compile(root);
      this.cache.set(schema, fn);
    }
    return fn(obj) ? { unknown: [], causes: [] } : toCheckResult(fn.errors);
  }
}
