// metav1.Status bodies and the errors that carry them, with the reasons and codes the real server uses.
import { type Cause } from "./schema.js";

export interface StatusBody {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: Cause[]; retryAfterSeconds?: number };
  code: number;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusBody["details"],
  ) {
    super(message);
  }

  body(): StatusBody {
    const b: StatusBody = { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: this.message, reason: this.reason, code: this.code };
    if (this.details) b.details = this.details;
    return b;
  }
}

/** "pods", "microvms.banger.dev": how the real server names a resource in messages. */
export const qualified = (group: string, plural: string) => (group ? `${plural}.${group}` : plural);

export const notFound = (group: string, plural: string, name: string) =>
  new ApiError(404, "NotFound", `${qualified(group, plural)} "${name}" not found`, { name, group: group || undefined, kind: plural });

export const alreadyExists = (group: string, plural: string, name: string) =>
  new ApiError(409, "AlreadyExists", `${qualified(group, plural)} "${name}" already exists`, { name, group: group || undefined, kind: plural });

export const conflict = (group: string, plural: string, name: string, why: string) =>
  new ApiError(409, "Conflict", `Operation cannot be fulfilled on ${qualified(group, plural)} "${name}": ${why}`, {
    name,
    group: group || undefined,
    kind: plural,
  });

export const invalid = (group: string, kind: string, name: string, causes: Cause[]) =>
  new ApiError(422, "Invalid", `${kind}${group ? `.${group}` : ""} "${name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(", ")}`, {
    name,
    group: group || undefined,
    kind,
    causes,
  });

export const badRequest = (message: string) => new ApiError(400, "BadRequest", message);

/** What a watch from a compacted resourceVersion gets, as an ERROR event (and a list with a stale continue, as 410). */
export const gone = (message: string) => new ApiError(410, "Expired", message);

export const methodNotAllowed = (message: string) => new ApiError(405, "MethodNotAllowed", message);

export const success = (code: number, details?: StatusBody["details"]): StatusBody => ({
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Success",
  code,
  ...(details ? { details } : {}),
});
