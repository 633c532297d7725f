import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { BangerError, asBangerError } from "../domain/errors.js";

/** Turns a zod failure into a message naming each bad field. */
export function badRequest(err: z.ZodError): BangerError {
  const parts = err.issues.map((i) => {
    const field = i.path.join(".") || "body";
    if (i.code === "unrecognized_keys") return `unknown field(s) ${(i as { keys: string[] }).keys.join(", ")}`;
    return `${field}: ${i.message}`;
  });
  const field = err.issues[0]?.path[0];
  return new BangerError("BAD_REQUEST", `invalid request: ${parts.join("; ")}`, {
    hint: "docs/api.md describes every request body",
    field: typeof field === "string" ? field : undefined,
  });
}

export function errorResponse(c: Context, raw: unknown) {
  const err = raw instanceof z.ZodError ? badRequest(raw) : asBangerError(raw);
  return c.json({ error: err.toJSON() }, err.status as ContentfulStatusCode);
}
