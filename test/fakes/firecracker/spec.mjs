// Loads the Firecracker Swagger 2.0 spec and turns it into a router plus
// JSON Schema validators (ajv), so the fake accepts exactly what the spec
// describes and nothing the real binary would refuse.
import { readFileSync } from "node:fs";
import Ajv from "ajv";
import addFormats from "ajv-formats";
import { parse } from "yaml";
import { makeRouter } from "./routes.mjs";

const SPEC_ID = "firecracker";

/**
 * Firecracker deserialises every body with serde's deny_unknown_fields, but
 * the spec does not say so. Close every object that lists its properties and
 * does not state additionalProperties itself.
 */
function closeObjects(node) {
  if (Array.isArray(node)) return node.forEach(closeObjects);
  if (!node || typeof node !== "object") return;
  if (node.properties && node.additionalProperties === undefined) node.additionalProperties = false;
  for (const v of Object.values(node)) closeObjects(v);
}

/**
 * @param {string} file path of firecracker-api.yaml
 * @param {{ allowUnknownFields?: boolean }} opts
 */
export function loadSpec(file, opts = {}) {
  const doc = parse(readFileSync(file, "utf8"));
  if (doc?.swagger !== "2.0" || !doc.paths || !doc.definitions) {
    throw new Error(`${file} is not a Swagger 2.0 document with paths and definitions`);
  }
  const definitions = structuredClone(doc.definitions);
  if (!opts.allowUnknownFields) closeObjects(definitions);

  // strict:false tolerates Swagger-only keywords (example, x-*) and keywords beside $ref.
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
  addFormats(ajv);
  // Refs in the spec are "#/definitions/X"; inside a schema whose $id is SPEC_ID they resolve as-is.
  ajv.addSchema({ $id: SPEC_ID, definitions });

  const routes = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "put", "patch", "post", "delete"].includes(method)) continue;
      const bodyParam = (op.parameters ?? []).find((p) => p.in === "body");
      const schema = bodyParam?.schema;
      // Compiled on first use: startup time is what the driver's spawn timeout sees.
      let compiled;
      const compile = () => {
        if (schema?.$ref) return ajv.compile({ $ref: `${SPEC_ID}${schema.$ref}` });
        // An inline body schema: give it the definitions so its own "#/definitions/X" refs resolve.
        const inline = structuredClone(schema);
        if (!opts.allowUnknownFields) closeObjects(inline);
        return ajv.compile({ $id: `${SPEC_ID}-${op.operationId ?? `${method}-${template}`}`, definitions, ...inline });
      };
      const validate = schema
        ? Object.defineProperty((body) => (compiled ??= compile())(body), "errors", { get: () => compiled?.errors })
        : null;
      routes.push({
        method: method.toUpperCase(),
        template,
        operationId: op.operationId,
        hasBody: Boolean(bodyParam),
        validate,
      });
    }
  }

  const route = makeRouter(routes);

  function errorsText(errors) {
    return (errors ?? [])
      .map((e) => {
        const where = `body${e.instancePath.replace(/\//g, ".")}`;
        const extra = e.params?.additionalProperty ? ` ('${e.params.additionalProperty}')` : "";
        return `${where} ${e.message}${extra}`;
      })
      .join("; ");
  }

  return { version: doc.info?.version ?? "unknown", route, errorsText };
}
