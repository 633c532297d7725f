import Database from "better-sqlite3";

/** Read the store's file directly (a second connection; WAL shows it every commit). For assertions only. */
function query<T>(store: { file: string }, sql: string, ...params: unknown[]): T[] {
  const db = new Database(store.file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

/** Every IP lease, ordered by address. */
export function leases(store: { file: string }): { ip: string; vmId: string }[] {
  return query<{ ip: string; vm_id: string }>(store, "SELECT ip, vm_id FROM ip_leases ORDER BY ip").map((r) => ({ ip: r.ip, vmId: r.vm_id }));
}

/** The image id an alias points at. */
export function aliasTarget(store: { file: string }, alias: string): string | undefined {
  return query<{ image_id: string }>(store, "SELECT image_id FROM image_aliases WHERE alias = ?", alias)[0]?.image_id;
}
