// Checks objects against Kubernetes' own OpenAPI v2 document (test/data/kubernetes/swagger.json), so the
// fake accepts and returns only what the real API server would. The document is adapted in memory only:
// - every object definition that lists properties gets additionalProperties:false, because the fake runs with
//   fieldValidation=Strict semantics by default (the swagger itself leaves unknown fields open);
// - IntOrString is string|integer and Quantity is string|number (the real decoder takes both; the fake stores
//   quantities as strings, as the real server serialises them).
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";

export const SWAGGER_PATH = resolve(import.meta.dirname, "../../data/kubernetes/swagger.json");
const DOC_ID = "k8s";
const INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/** One field-level problem, in the shape of metav1.StatusCause. */
export interface Cause {
  reason: "FieldValueInvalid" | "FieldValueRequired" | "FieldValueNotSupported" | "FieldValueTypeInvalid" | "FieldValueDuplicate";
  message: string;
  field: string;
}

export interface CheckResult {
  /** Fields not declared in the schema (the real server answers 400 BadRequest for these under Strict). */
  unknown: string[];
  /** Everything else the schema rejects (422 Invalid). */
  causes: Cause[];
}

function closeObjects(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(closeObjects);
    return;
  }
  if (!node || typeof node !== "object") return;
  const rec = node as Record<string, unknown>;
  if (rec.properties && typeof rec.properties === "object" && rec.additionalProperties === undefined) rec.additionalProperties = false;
  for (const [k, v] of Object.entries(rec)) {
    // A property map's keys are names, not keywords; its values are schemas.
    if (k === "properties" && v && typeof v === "object") Object.values(v).forEach(closeObjects);
    else if (k !== "enum" && k !== "default" && k !== "example") closeObjects(v);
  }
}

function fieldPath(instancePath: string): string {
  // "/spec/containers/0/image" -> "spec.containers[0].image", the form the real server names fields in.
  return instancePath
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), "");
}

/** Turns ajv errors into unknown-field names and StatusCauses; anyOf noise collapses to one cause per field. */
export function toCheckResult(errors: ErrorObject[] | null | undefined, prefix = ""): CheckResult {
  const unknown: string[] = [];
  const causes: Cause[] = [];
  const seen = new Set<string>();
  const join = (a: string, b: string) => (a && b ? `${a}.${b}` : a || b);
  for (const e of errors ?? []) {
    const at = join(prefix, fieldPath(e.instancePath));
    if (e.keyword === "additionalProperties") {
      unknown.push(join(at, String((e.params as { additionalProperty: string }).additionalProperty)));
      continue;
    }
    let cause: Cause;
    if (e.keyword === "required") {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      cause = { reason: "FieldValueRequired", message: "Required value", field: join(at, missing) };
    } else if (e.keyword === "type" || e.keyword === "anyOf") {
      cause = { reason: "FieldValueTypeInvalid", message: `Invalid value: ${e.message ?? "wrong type"}`, field: at };
    } else if (e.keyword === "enum") {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(", ");
      cause = { reason: "FieldValueNotSupported", message: `Unsupported value: supported values: ${allowed}`, field: at };
    } else {
      cause = { reason: "FieldValueInvalid", message: `Invalid value: ${e.message ?? e.keyword}`, field: at };
    }
    const key = `${cause.field}\u0000${cause.reason}`;
    if (!seen.has(key)) {
      seen.add(key);
      causes.push(cause);
    }
  }
  return { unknown: [...new Set(unknown)], causes };
}

export function newAjv(opts: { useDefaults?: boolean } = {}): Ajv {
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false, useDefaults: opts.useDefaults ?? false, validateSchema: false });
  addFormats.default(ajv, ["date-time", "byte"]);
  ajv.addFormat("int32", { type: "number", validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat("int64", { type: "number", validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat("double", { type: "number", validate: () => true });
  return ajv;
}

/** Validators for definitions of the real API, compiled on first use (Pod pulls in a few hundred definitions). */
export class SwaggerSchemas {
  private readonly ajv = newAjv();
  private readonly cache = new Map<string, ValidateFunction>();
  readonly definitions: Record<string, unknown>;

  constructor(path = SWAGGER_PATH) {
    const doc = JSON.parse(readFileSync(path, "utf8")) as { definitions: Record<string, unknown> };
    const defs = doc.definitions;
    closeObjects(defs);
    defs[INT_OR_STRING] = { anyOf: [{ type: "string" }, { type: "integer" }] };
    defs[QUANTITY] = { anyOf: [{ type: "string" }, { type: "number" }] };
    this.definitions = defs;
    this.ajv.addSchema({ $id: DOC_ID, definitions: defs });
  }

  has(definition: string): boolean {
    return definition in this.definitions;
  }

  validator(definition: string): ValidateFunction {
    let fn = this.cache.get(definition);
    if (!fn) {
      if (!this.has(definition)) throw new Error(`no definition ${definition} in the Kubernetes OpenAPI document`);
      const got = this.ajv.getSchema(`${DOC_ID}#/definitions/${definition}`);
      if (!got) throw new Error(`ajv could not compile ${definition}`);
      fn = got;
      this.cache.set(definition, fn);
    }
    return fn;
  }

  check(definition: string, value: unknown, prefix = ""): CheckResult {
    const fn = this.validator(definition);
    return fn(value) ? { unknown: [], causes: [] } : toCheckResult(fn.errors, prefix);
  }
}
