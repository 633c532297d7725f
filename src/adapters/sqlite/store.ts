import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { BangerError } from "../../domain/errors.js";
import type { Image, ImageStatus, LifecycleEvent, Vm, VmState } from "../../domain/types.js";
import type { NewImage, Store, VmPatch } from "../../ports/store.js";
import { sha256Hex } from "./hash.js";
import { imageDigest, isImageDigest } from "../../domain/image-digest.js";
import { migrate } from "./migrations.js";
import {
  artifactToRow,
  eventToRow,
  imageToRow,
  rowToEvent,
  rowToImage,
  rowToVm,
  vmPatchToColumns,
  vmToRow,
  type ArtifactRow,
  type EventRow,
  type ImageRow,
  type VmRow,
} from "./rows.js";
import { constraintOf, isBusy, isDuplicate } from "./sqlite-errors.js";
import { deleteForward, deletePeers, insertForward, insertPeers, selectForwards, selectPeerPairs, type Sql } from "./net-rows.js";
import type { PortForward } from "../../domain/forwards.js";

/** How long a writer waits for another process (daemon, verifier script) to finish its transaction. */
export const BUSY_TIMEOUT_MS = 5000;

/** Lowest vsock context id a guest may use: 0-2 are reserved for the hypervisor and host. */
export const FIRST_GUEST_CID = 3;

export interface SqliteStoreOptions {
  now?: () => Date;
  /** Defaults to BUSY_TIMEOUT_MS. */
  busyTimeoutMs?: number;
}

export class SqliteStore implements Store {
  private readonly stmts = new Map<string, Database.Statement>();

  private constructor(
    private readonly db: Database.Database,
    readonly file: string,
    private readonly now: () => Date,
    private readonly busyTimeoutMs: number,
  ) {}

  /** Opens (creating if needed) the state database and brings its schema up to date. */
  static open(dbFile: string, opts: SqliteStoreOptions = {}): SqliteStore {
    let db: Database.Database | undefined;
    const busyMs = opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
    try {
      if (dbFile !== ":memory:") mkdirSync(dirname(dbFile), { recursive: true });
      db = new Database(dbFile, { timeout: busyMs });
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyMs))}`);
      db.pragma("journal_mode = WAL");
      // NORMAL is durable across process crashes in WAL mode; only power loss can drop the last commits.
      db.pragma("synchronous = NORMAL");
      db.pragma("foreign_keys = ON");
      migrate(db, dbFile);
      const store = new SqliteStore(db, dbFile, opts.now ?? (() => new Date()), busyMs);
      store.backfillDigests();
      return store;
    } catch (e) {
      db?.close();
      if (e instanceof BangerError) throw e;
      throw new BangerError("INTERNAL", `cannot open state database ${dbFile}: ${(e as Error).message}`, {
        cause: e,
        hint: isBusy(e)
          ? "another process holds the database lock; retry, or stop the other bangerd"
          : "check that state_dir is writable; if the file is damaged, move it aside and restart bangerd",
      });
    }
  }

  // ---- images ----

  insertImage(img: NewImage): Image {
    return this.write(() => {
      try {
        this.run(
          "INSERT INTO images (id, name, status, status_detail, boot_args, default_vcpus, default_memory_mib, default_work_disk_gib, guest_json, created_at, build_json, digest, pulled_from, last_used_at) VALUES (@id, @name, @status, @status_detail, @boot_args, @default_vcpus, @default_memory_mib, @default_work_disk_gib, @guest_json, @created_at, @build_json, @digest, @pulled_from, @last_used_at)",
          imageToRow(img, "ok", this.now().toISOString()),
        );
      } catch (e) {
        const c = constraintOf(e);
        if (isDuplicate(c, "images.name")) {
          throw new BangerError("IMAGE_EXISTS", `an image named ${img.name} already exists`, {
            hint: `pick another name, or remove the old one with \`banger image rm ${img.name}\``,
          });
        }
        if (isDuplicate(c, "images.id"))
          throw new BangerError("IMAGE_EXISTS", `an image with id ${img.id} already exists`, { hint: "retry; image ids are generated per registration" });
        throw e;
      }
      for (const a of img.artifacts) {
        try {
          this.run(
            "INSERT INTO image_artifacts (image_id, role, path, sha256, size_bytes) VALUES (@image_id, @role, @path, @sha256, @size_bytes)",
            artifactToRow(img.id, a),
          );
        } catch (e) {
          const c = constraintOf(e);
          if (c?.kind === "primarykey" || c?.kind === "unique" || c?.kind === "check") {
            throw new BangerError("INVALID_ARTIFACT", `image ${img.name}: artifact role ${a.role} is duplicated or unknown`, {
              hint: "give each of kernel, initrd, rootfs, work_seed at most once",
            });
          }
          throw e;
        }
      }
      return this.loadImage(this.get<ImageRow>("SELECT * FROM images WHERE id = ?", img.id)!);
    });
  }

  getImage(nameOrAlias: string): Image | undefined {
    return this.read(() => {
      const row =
        (isImageDigest(nameOrAlias) ? this.get<ImageRow>("SELECT * FROM images WHERE digest = ? ORDER BY created_at, id LIMIT 1", nameOrAlias) : undefined) ??
        this.get<ImageRow>("SELECT * FROM images WHERE name = ?", nameOrAlias) ??
        this.get<ImageRow>("SELECT i.* FROM images i JOIN image_aliases a ON a.image_id = i.id WHERE a.alias = ?", nameOrAlias);
      return row && this.loadImage(row);
    });
  }

  getImageById(id: string): Image | undefined {
    return this.read(() => {
      const row = this.get<ImageRow>("SELECT * FROM images WHERE id = ?", id);
      return row && this.loadImage(row);
    });
  }

  listImages(): Image[] {
    return this.read(() => this.all<ImageRow>("SELECT * FROM images ORDER BY name").map((r) => this.loadImage(r)));
  }

  /** Removing an id that is not there is a no-op, so undo paths can call it blindly. */
  deleteImage(id: string): void {
    this.write(() => {
      try {
        this.run("DELETE FROM images WHERE id = ?", id);
      } catch (e) {
        if (constraintOf(e)?.kind !== "foreignkey") throw e;
        // The app checks first; getting here means a racing create or a caller that skipped the check.
        const users = this.all<{ name: string }>("SELECT name FROM vms WHERE image_id = ? ORDER BY name", id).map((r) => r.name);
        const aliases = this.all<{ alias: string }>("SELECT alias FROM image_aliases WHERE image_id = ? ORDER BY alias", id).map((r) => r.alias);
        const what = users.length > 0 ? `used by VM ${users.join(", ")}` : `the target of alias ${aliases.join(", ")}`;
        const name = this.get<{ name: string }>("SELECT name FROM images WHERE id = ?", id)?.name ?? id;
        throw new BangerError("IMAGE_IN_USE", `image ${name} is ${what}`, {
          cause: e,
          hint: users.length > 0 ? "remove those VMs first with `banger vm rm`" : "promote another image to that alias first with `banger image promote`",
        });
      }
    });
  }

  touchImage(id: string): void {
    this.write(() => this.run("UPDATE images SET last_used_at = ? WHERE id = ?", this.now().toISOString(), id));
  }

  /** Images registered before migration 10 get their digest once; it depends only on what the rows already hold. */
  private backfillDigests(): void {
    const missing = this.read(() => this.all<ImageRow>("SELECT * FROM images WHERE digest IS NULL").map((r) => this.loadImage(r)));
    if (missing.length === 0) return;
    this.write(() => {
      for (const img of missing)
        this.run(
          "UPDATE images SET digest = ?, last_used_at = COALESCE(last_used_at, created_at) WHERE id = ? AND digest IS NULL",
          imageDigest(img, sha256Hex),
          img.id,
        );
    });
  }

  setImageStatus(id: string, status: ImageStatus, detail?: string): void {
    this.write(() => {
      const res = this.run("UPDATE images SET status = ?, status_detail = ? WHERE id = ?", status, detail ?? null, id);
      if (res.changes === 0) throw imageNotFound(id);
    });
  }

  setAlias(alias: string, imageId: string): void {
    this.write(() => {
      try {
        this.run("INSERT INTO image_aliases (alias, image_id) VALUES (?, ?) ON CONFLICT (alias) DO UPDATE SET image_id = excluded.image_id", alias, imageId);
      } catch (e) {
        if (constraintOf(e)?.kind === "foreignkey") throw imageNotFound(imageId);
        throw e;
      }
    });
  }

  // ---- vms ----

  insertVm(vm: Vm): void {
    this.write(() => {
      const row = vmToRow(vm);
      const cols = Object.keys(row);
      try {
        this.run(`INSERT INTO vms (${cols.join(", ")}) VALUES (${cols.map((c) => `@${c}`).join(", ")})`, row);
      } catch (e) {
        const c = constraintOf(e);
        if (isDuplicate(c, "vms.name"))
          throw new BangerError("VM_EXISTS", `a VM named ${vm.name} already exists`, { hint: "pick another --name, or omit it for a generated one" });
        if (isDuplicate(c, "vms.id"))
          throw new BangerError("VM_EXISTS", `a VM with id ${vm.id} already exists`, { hint: "retry; VM ids are generated per create" });
        if (c?.kind === "foreignkey") throw imageNotFound(vm.imageId);
        throw e;
      }
    });
  }

  getVm(name: string): Vm | undefined {
    return this.read(() => {
      const row = this.get<VmRow>("SELECT * FROM vms WHERE name = ?", name);
      return row && rowToVm(row);
    });
  }

  listVms(): Vm[] {
    return this.read(() => this.all<VmRow>("SELECT * FROM vms ORDER BY created_at, name").map(rowToVm));
  }

  /** Applies the patch and returns the VM as stored; `updatedAt` is stamped unless the patch sets it. */
  updateVm(id: string, patch: VmPatch): Vm {
    return this.write(() => {
      const cols = vmPatchToColumns(patch);
      if (!("updatedAt" in patch)) cols.updated_at = this.now().toISOString();
      const names = Object.keys(cols);
      const res = this.run(`UPDATE vms SET ${names.map((c) => `${c} = @${c}`).join(", ")} WHERE id = @__id`, { ...cols, __id: id });
      if (res.changes === 0) throw vmNotFound(id);
      return rowToVm(this.get<VmRow>("SELECT * FROM vms WHERE id = ?", id)!);
    });
  }

  /**
   * Compare-and-swap of a VM's state: applies `to` (and the patch) only while
   * the row is still in one of `from`. Undefined when another writer got there
   * first, so racing operations cannot both take the same edge.
   */
  transitionVm(id: string, from: readonly VmState[], to: VmState, patch: VmPatch = {}): Vm | undefined {
    return this.write(() => {
      const cols: Record<string, unknown> = { ...vmPatchToColumns(patch), state: to };
      if (!("updatedAt" in patch)) cols.updated_at = this.now().toISOString();
      const names = Object.keys(cols);
      const marks = from.map((_, i) => `@__from${i}`).join(", ");
      const params: Record<string, unknown> = { ...cols, __id: id };
      from.forEach((st, i) => {
        params[`__from${i}`] = st;
      });
      const res = this.run(`UPDATE vms SET ${names.map((c) => `${c} = @${c}`).join(", ")} WHERE id = @__id AND state IN (${marks})`, params);
      if (res.changes === 0) return undefined;
      return rowToVm(this.get<VmRow>("SELECT * FROM vms WHERE id = ?", id)!);
    });
  }

  /** Drops the VM with its lease, vsock CID, forwards and peerings (cascade) and its events. Missing ids are a no-op. */
  deleteVm(id: string): void {
    this.write(() => {
      this.run("DELETE FROM lifecycle_events WHERE vm_id = ?", id);
      this.run("DELETE FROM vms WHERE id = ?", id);
    });
  }

  vmsUsingImage(imageId: string): Vm[] {
    return this.read(() => this.all<VmRow>("SELECT * FROM vms WHERE image_id = ? ORDER BY created_at, name", imageId).map(rowToVm));
  }

  nameTaken(name: string): boolean {
    return this.read(() => this.get<{ one: number }>("SELECT 1 AS one FROM vms WHERE name = ?", name) !== undefined);
  }

  // ---- leases ----

  /**
   * First candidate nobody holds, recorded for vmId in the same IMMEDIATE
   * transaction that looked, so a second process cannot pick it in between.
   * A VM that already holds a lease gets that lease back.
   */
  allocateLease(vmId: string, candidates: Iterable<string>): string | undefined {
    return this.write(() => {
      const mine = this.get<{ ip: string }>("SELECT ip FROM ip_leases WHERE vm_id = ?", vmId);
      if (mine) return mine.ip;
      if (!this.get("SELECT 1 FROM vms WHERE id = ?", vmId)) throw vmNotFound(vmId);
      const taken = new Set(this.all<{ ip: string }>("SELECT ip FROM ip_leases").map((r) => r.ip));
      for (const ip of candidates) {
        if (taken.has(ip)) continue;
        this.run("INSERT INTO ip_leases (ip, vm_id) VALUES (?, ?)", ip, vmId);
        return ip;
      }
      return undefined;
    });
  }

  releaseLease(vmId: string): void {
    this.write(() => {
      this.run("DELETE FROM ip_leases WHERE vm_id = ?", vmId);
    });
  }

  /** Lowest free CID >= 3, held until the VM row is deleted. Idempotent per VM. */
  allocateVsockCid(vmId: string): number {
    return this.write(() => {
      const mine = this.get<{ cid: number }>("SELECT cid FROM vsock_cids WHERE vm_id = ?", vmId);
      if (mine) return mine.cid;
      if (!this.get("SELECT 1 FROM vms WHERE id = ?", vmId)) throw vmNotFound(vmId);
      // Either the first CID is free, or the answer is just past some held CID whose successor is free.
      const free = this.get<{ cid: number }>(
        `SELECT @first AS cid WHERE NOT EXISTS (SELECT 1 FROM vsock_cids WHERE cid = @first)
         UNION ALL
         SELECT c.cid + 1 FROM vsock_cids c WHERE NOT EXISTS (SELECT 1 FROM vsock_cids n WHERE n.cid = c.cid + 1)
         ORDER BY cid LIMIT 1`,
        { first: FIRST_GUEST_CID },
      )!;
      this.run("INSERT INTO vsock_cids (cid, vm_id) VALUES (?, ?)", free.cid, vmId);
      return free.cid;
    });
  }

  // ---- port forwards and peers (net-rows.ts) ----

  addForward(f: PortForward): void {
    this.write(() => insertForward(this.sql, f, this.now().toISOString()));
  }

  removeForward(vmId: string, hostAddress: string, hostPort: number): boolean {
    return this.write(() => deleteForward(this.sql, vmId, hostAddress, hostPort));
  }

  listForwards(vmId?: string): PortForward[] {
    return this.read(() => selectForwards(this.sql, vmId));
  }

  addPeers(vmId: string, peerIds: readonly string[]): void {
    this.write(() => insertPeers(this.sql, vmId, peerIds));
  }

  removePeers(vmId: string): void {
    this.write(() => deletePeers(this.sql, vmId));
  }

  peerPairs(): Array<[string, string]> {
    return this.read(() => selectPeerPairs(this.sql));
  }

  private readonly sql: Sql = {
    get: (sql, ...p) => this.get(sql, ...p),
    all: (sql, ...p) => this.all(sql, ...p),
    run: (sql, ...p) => this.run(sql, ...p),
  };

  // ---- lifecycle events ----

  /**
   * Dropped when the VM row is gone: a failed create records its last undo after
   * that undo deleted the row, and the event would be an orphan nobody prunes.
   */
  addEvent(ev: LifecycleEvent): void {
    this.write(() => {
      this.run(
        `INSERT INTO lifecycle_events (vm_id, vm_name, op_id, op, stage, started_at, duration_ms, outcome, detail)
         SELECT @vm_id, @vm_name, @op_id, @op, @stage, @started_at, @duration_ms, @outcome, @detail WHERE EXISTS (SELECT 1 FROM vms WHERE id = @vm_id)`,
        eventToRow(ev),
      );
    });
  }

  nextOpId(): number {
    return this.write(() => {
      this.run("UPDATE counters SET value = value + 1 WHERE name = 'lifecycle_op'");
      return this.get<{ value: number }>("SELECT value FROM counters WHERE name = 'lifecycle_op'")!.value;
    });
  }

  /** Keeps the events of the VM's keepOps newest operations; returns how many rows went. */
  pruneEvents(vmId: string, keepOps: number): number {
    return this.write(
      () =>
        this.run(
          `DELETE FROM lifecycle_events WHERE vm_id = @vm AND op_id < (
         SELECT MIN(op_id) FROM (SELECT DISTINCT op_id FROM lifecycle_events WHERE vm_id = @vm ORDER BY op_id DESC LIMIT @keep))`,
          { vm: vmId, keep: keepOps },
        ).changes,
    );
  }

  /** In the order they were recorded (undo records come after the failure that caused them). */
  events(vmId: string): LifecycleEvent[] {
    return this.read(() => this.all<EventRow>("SELECT * FROM lifecycle_events WHERE vm_id = ? ORDER BY id", vmId).map(rowToEvent));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  // ---- plumbing ----

  private loadImage(row: ImageRow): Image {
    const artifacts = this.all<ArtifactRow>("SELECT * FROM image_artifacts WHERE image_id = ?", row.id);
    const aliases = this.all<{ alias: string }>("SELECT alias FROM image_aliases WHERE image_id = ?", row.id).map((r) => r.alias);
    return rowToImage(row, artifacts, aliases);
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  private get<T>(sql: string, ...params: unknown[]): T | undefined {
    return this.stmt(sql).get(...params) as T | undefined;
  }

  private all<T>(sql: string, ...params: unknown[]): T[] {
    return this.stmt(sql).all(...params) as T[];
  }

  private run(sql: string, ...params: unknown[]): Database.RunResult {
    return this.stmt(sql).run(...params);
  }

  // Writers take the lock up front (IMMEDIATE) so a read-then-write never
  // fails half way with SQLITE_BUSY when another process commits in between.
  private write<T>(fn: () => T): T {
    return this.guard(() => this.db.transaction(fn).immediate());
  }

  // A read transaction gives multi-statement reads (image + artifacts + aliases) one consistent snapshot.
  private read<T>(fn: () => T): T {
    return this.guard(() => this.db.transaction(fn).deferred());
  }

  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (isBusy(e)) {
        throw new BangerError("TIMEOUT", `state database ${this.file} stayed locked for ${this.busyTimeoutMs} ms`, {
          cause: e,
          hint: "another process is holding a long write transaction on the banger database; retry, or stop that process",
        });
      }
      throw e;
    }
  }
}

function imageNotFound(id: string): BangerError {
  return new BangerError("IMAGE_NOT_FOUND", `no image with id ${id}`, { hint: "list images with `banger image ls`" });
}

function vmNotFound(id: string): BangerError {
  return new BangerError("VM_NOT_FOUND", `no VM with id ${id}`, { hint: "list VMs with `banger vm ls`" });
}
