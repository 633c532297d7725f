// SQLite reports constraint failures as codes plus "table.column" text; this
// turns the ones the store expects into a small, testable vocabulary.

export type ConstraintKind = "unique" | "primarykey" | "foreignkey" | "check" | "notnull";

export interface Constraint {
  kind: ConstraintKind;
  /** "table.column" list for UNIQUE/PRIMARY KEY failures, when SQLite names them. */
  columns: string[];
}

const KINDS: Record<string, ConstraintKind> = {
  SQLITE_CONSTRAINT_UNIQUE: "unique",
  SQLITE_CONSTRAINT_PRIMARYKEY: "primarykey",
  SQLITE_CONSTRAINT_FOREIGNKEY: "foreignkey",
  SQLITE_CONSTRAINT_CHECK: "check",
  SQLITE_CONSTRAINT_NOTNULL: "notnull",
};

export function constraintOf(e: unknown): Constraint | undefined {
  if (!(e instanceof Error)) return undefined;
  const code = (e as { code?: unknown }).code;
  if (typeof code !== "string") return undefined;
  // ON DELETE RESTRICT fires as SQLITE_CONSTRAINT_TRIGGER, so the text is the reliable signal.
  const kind = e.message.startsWith("FOREIGN KEY constraint failed") ? "foreignkey" : KINDS[code];
  if (!kind) return undefined;
  const m = /constraint failed: (.*)$/.exec(e.message);
  const columns = m ? m[1].split(",").map((s) => s.trim()) : [];
  return { kind, columns };
}

/** True for a UNIQUE or PRIMARY KEY failure on `table.column`. */
export function isDuplicate(c: Constraint | undefined, column: string): boolean {
  return !!c && (c.kind === "unique" || c.kind === "primarykey") && c.columns.includes(column);
}

export function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && (code === "SQLITE_BUSY" || code.startsWith("SQLITE_BUSY_") || code === "SQLITE_LOCKED");
}
