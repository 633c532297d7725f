// Admission of a written object: the checks the real server makes before storing it. Schema checks come from
// Kubernetes' OpenAPI document (built-ins) or the CRD (custom resources); a few semantic rules the schema cannot
// express (names, required containers, parseable quantities) follow the real validation's messages.
import { type CustomSchemas } from "./crd.js";
import { QuantityError, parseQuantity } from "./quantity.js";
import { type Cause, type CheckResult, type SwaggerSchemas } from "./schema.js";
import { ApiError, badRequest, invalid } from "./status.js";
import { type KObj, type ResourceType, apiVersionOf } from "./types.js";

export type FieldValidation = "Strict" | "Warn" | "Ignore";

export interface WriteCtx {
  fieldValidation: FieldValidation;
  /** Warning headers to send back (fieldValidation=Warn). */
  warnings: string[];
}

const OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** JSON null means "unset" to the real decoder; dropping nulls first keeps the schema from rejecting them. */
export function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== null)
        .map(([k, x]) => [k, dropNulls(x)]),
    );
  }
  return v;
}

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const MICRO_TIME_KEYS = new Set(["eventTime", "lastObservedTime", "renewTime", "acquireTime"]);
const OPAQUE_KEYS = new Set(["labels", "annotations", "data", "stringData"]);

/**
 * metav1.Time is stored at second precision in UTC, so a client that sends "…:28.000Z" (a JS Date) reads back
 * "…:28Z", as from the real server; MicroTime fields and free-form maps are left alone.
 */
export function normalizeTimes(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalizeTimes);
  if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (typeof x === "string" && TIME.test(x) && !MICRO_TIME_KEYS.has(k))
        (v as Record<string, unknown>)[k] = new Date(x).toISOString().replace(/\.\d+Z$/, "Z");
      else if (!OPAQUE_KEYS.has(k)) normalizeTimes(x);
    }
  }
  return v;
}

function removePath(obj: unknown, dotted: string): void {
  const parts = dotted.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== "");
  let cur = obj as Record<string, unknown>;
  for (const p of parts.slice(0, -1)) {
    cur = cur?.[p] as Record<string, unknown>;
    if (!cur || typeof cur !== "object") return;
  }
  delete cur[parts[parts.length - 1]];
}

function nameCauses(rt: ResourceType, name: string | undefined): Cause[] {
  if (!name) return [{ reason: "FieldValueRequired", field: "metadata.name", message: "Required value: name or generateName is required" }];
  const label = rt.kind === "Namespace";
  const ok = label ? DNS_LABEL.test(name) && name.length <= 63 : DNS_SUBDOMAIN.test(name) && name.length <= 253;
  if (ok) return [];
  const what = label ? "a lowercase RFC 1123 label" : "a lowercase RFC 1123 subdomain";
  return [
    {
      reason: "FieldValueInvalid",
      field: "metadata.name",
      message: `Invalid value: "${name}": ${what} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    },
  ];
}

/** Quantity fields by kind, parsed like resource.ParseQuantity; numbers become strings as the real server stores them. */
function quantityCauses(obj: KObj): Cause[] {
  const causes: Cause[] = [];
  const fix = (m: Record<string, unknown> | undefined, field: string) => {
    for (const [k, v] of Object.entries(m ?? {})) {
      try {
        parseQuantity(v as string | number);
        if (typeof v === "number") m![k] = String(v);
      } catch (e) {
        if (!(e instanceof QuantityError)) throw e;
        causes.push({ reason: "FieldValueInvalid", field: `${field}[${k}]`, message: `Invalid value: "${String(v)}": ${e.message}` });
      }
    }
  };
  if (obj.kind === "Pod") {
    (obj.spec?.containers ?? []).forEach((c: any, i: number) => {
      fix(c.resources?.requests, `spec.containers[${i}].resources.requests`);
      fix(c.resources?.limits, `spec.containers[${i}].resources.limits`);
    });
  }
  if (obj.kind === "Node") {
    fix(obj.status?.capacity, "status.capacity");
    fix(obj.status?.allocatable, "status.allocatable");
  }
  return causes;
}

function podCauses(obj: KObj): Cause[] {
  const causes: Cause[] = [];
  const containers = (obj.spec?.containers ?? []) as { name: string; image?: string }[];
  if (containers.length === 0) causes.push({ reason: "FieldValueRequired", field: "spec.containers", message: "Required value" });
  const seen = new Set<string>();
  containers.forEach((c, i) => {
    if (!c.image) causes.push({ reason: "FieldValueRequired", field: `spec.containers[${i}].image`, message: "Required value" });
    if (seen.has(c.name)) causes.push({ reason: "FieldValueDuplicate", field: `spec.containers[${i}].name`, message: `Duplicate value: "${c.name}"` });
    seen.add(c.name);
  });
  return causes;
}

export class Admission {
  constructor(
    private readonly swagger: SwaggerSchemas,
    private readonly custom: CustomSchemas,
    private readonly crdSchema: (rt: ResourceType) => Record<string, unknown> | undefined,
  ) {}

  /** Checks obj (mutating it: defaults, canonical quantities, stripped unknown fields under Warn/Ignore); throws ApiError. */
  admit(rt: ResourceType, obj: KObj, ctx: WriteCtx, extraCauses: (obj: KObj) => Cause[] = () => []): void {
    const want = apiVersionOf(rt);
    if (obj.apiVersion !== undefined && obj.apiVersion !== want)
      throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${want})`);
    if (obj.kind !== undefined && obj.kind !== rt.kind) throw badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${rt.kind})`);
    obj.apiVersion = want;
    obj.kind = rt.kind;
    const check = (): CheckResult => {
      if (rt.definition) return this.swagger.check(rt.definition, obj);
      const meta = this.swagger.check(OBJECT_META, obj.metadata, "metadata");
      const body = this.custom.check(this.crdSchema(rt), obj);
      return { unknown: [...meta.unknown, ...body.unknown], causes: [...meta.causes, ...body.causes] };
    };
    let result = check();
    if (result.unknown.length > 0) {
      if (ctx.fieldValidation === "Strict") {
        const msg = rt.definition
          ? `strict decoding error: ${result.unknown.map((f) => `unknown field "${f}"`).join(", ")}`
          : `${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: strict decoding error: ${result.unknown.map((f) => `unknown field "${f}"`).join(", ")}`;
        throw badRequest(msg);
      }
      for (const f of result.unknown) {
        removePath(obj, f);
        if (ctx.fieldValidation === "Warn") ctx.warnings.push(`unknown field "${f}"`);
      }
      result = check();
    }
    const name = obj.metadata.name ?? "";
    // For built-ins a wrong JSON type is a decoding error (400), before validation ever runs.
    const typeErr = rt.definition ? result.causes.find((c) => c.reason === "FieldValueTypeInvalid") : undefined;
    if (typeErr) {
      throw badRequest(
        `${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: json: cannot unmarshal into Go struct field .${typeErr.field}: ${typeErr.message}`,
      );
    }
    // Kind-specific rules run only on an object of the right shape, as the real validation runs after decoding.
    const causes = [...result.causes, ...nameCauses(rt, obj.metadata.name), ...(result.causes.length === 0 ? extraCauses(obj) : [])];
    if (causes.length === 0) {
      causes.push(...quantityCauses(obj));
      if (rt.kind === "Pod") causes.push(...podCauses(obj));
    }
    if (causes.length > 0) throw invalid(rt.group, rt.kind, name, causes);
    if (rt.definition) normalizeTimes(obj);
  }

  /** The self-check: a body the fake is about to return must fit the real API's definition too. */
  checkResponse(definition: string, body: unknown): string[] {
    if (!this.swagger.has(definition)) return [];
    const r = this.swagger.check(definition, body);
    return [...r.unknown.map((f) => `unknown field ${f}`), ...r.causes.map((c) => `${c.field}: ${c.message}`)];
  }
}

export const forbidden = (rt: ResourceType, name: string, field: string, message: string) =>
  new ApiError(422, "Invalid", `${rt.kind} "${name}" is invalid: ${field}: Forbidden: ${message}`, {
    name,
    group: rt.group || undefined,
    kind: rt.kind,
    causes: [{ reason: "FieldValueInvalid", field, message: `Forbidden: ${message}` }],
  });
