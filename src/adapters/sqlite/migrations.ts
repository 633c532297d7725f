import type Database from "better-sqlite3";
import { BangerError } from "../../domain/errors.js";

export interface Migration {
  version: number;
  sql: string;
  /**
   * SQLite cannot alter a CHECK constraint, so such a step rebuilds the table.
   * Dropping the old table with foreign keys on would cascade into its
   * children (leases, CIDs); the step runs with them off and is checked after.
   */
  rebuildsTables?: boolean;
}

// Shipped migrations are immutable: a database that already ran version N
// never runs it again, so editing one would silently split installs into two
// schemas. Change the schema only by appending a new entry.
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
CREATE TABLE images (
  id                    TEXT PRIMARY KEY,
  name                  TEXT NOT NULL UNIQUE,
  status                TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'broken')),
  status_detail         TEXT,
  boot_args             TEXT NOT NULL,
  default_vcpus         INTEGER,
  default_memory_mib    INTEGER,
  default_work_disk_gib INTEGER,
  guest_json            TEXT NOT NULL,
  created_at            TEXT NOT NULL
);

CREATE TABLE image_artifacts (
  image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  role       TEXT NOT NULL CHECK (role IN ('kernel', 'initrd', 'rootfs', 'work_seed')),
  path       TEXT NOT NULL,
  sha256     TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  PRIMARY KEY (image_id, role)
);

-- RESTRICT: an alias is a promise to users ("debian" means this image), so
-- the image it names must not vanish underneath it.
CREATE TABLE image_aliases (
  alias    TEXT PRIMARY KEY,
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT
);
CREATE INDEX image_aliases_image ON image_aliases(image_id);

CREATE TABLE vms (
  id                 TEXT PRIMARY KEY,
  name               TEXT NOT NULL UNIQUE,
  image_id           TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
  image_name         TEXT NOT NULL,
  state              TEXT NOT NULL CHECK (state IN ('creating', 'running', 'stopped', 'failed', 'deleting')),
  vmm                TEXT NOT NULL CHECK (vmm IN ('firecracker', 'qemu')),
  vcpus              INTEGER NOT NULL,
  memory_mib         INTEGER NOT NULL,
  work_disk_gib      INTEGER NOT NULL,
  nat                INTEGER NOT NULL CHECK (nat IN (0, 1)),
  ip                 TEXT,
  mac                TEXT,
  tap                TEXT,
  pid                INTEGER,
  pid_start          INTEGER,
  dir                TEXT NOT NULL,
  vsock_cid          INTEGER,
  work_seed_fallback INTEGER NOT NULL CHECK (work_seed_fallback IN (0, 1)),
  created_at         TEXT NOT NULL,
  updated_at         TEXT NOT NULL,
  last_error         TEXT
);
CREATE INDEX vms_image ON vms(image_id);

CREATE TABLE ip_leases (
  ip    TEXT PRIMARY KEY,
  vm_id TEXT NOT NULL UNIQUE REFERENCES vms(id) ON DELETE CASCADE
);

CREATE TABLE vsock_cids (
  cid   INTEGER PRIMARY KEY CHECK (cid >= 3),
  vm_id TEXT NOT NULL UNIQUE REFERENCES vms(id) ON DELETE CASCADE
);

-- No foreign key: the audit trail must survive the VM it describes.
CREATE TABLE lifecycle_events (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  vm_id       TEXT NOT NULL,
  vm_name     TEXT NOT NULL,
  op          TEXT NOT NULL,
  stage       TEXT NOT NULL,
  started_at  TEXT NOT NULL,
  duration_ms REAL NOT NULL,
  outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'undone')),
  detail      TEXT
);
CREATE INDEX lifecycle_events_vm ON lifecycle_events(vm_id);
`,
  },
  {
    version: 2,
    sql: `
-- Retention works per operation, so every event says which run of a plan wrote it.
ALTER TABLE lifecycle_events ADD COLUMN op_id INTEGER;

-- Events of VMs that are already gone would otherwise stay forever: nothing prunes them.
DELETE FROM lifecycle_events WHERE vm_id NOT IN (SELECT id FROM vms);

-- Older rows carry no operation id, so rebuild the grouping from their order: a row starts
-- a new operation when the op name changes, after a 'total' (a plan that finished), or
-- when a non-undo stage follows a failure (a failed plan's undos come right after it).
-- Each operation takes the id of its first row.
UPDATE lifecycle_events SET op_id = id WHERE id IN (
  SELECT id FROM (
    SELECT id, op, stage,
           LAG(op) OVER w AS prev_op, LAG(stage) OVER w AS prev_stage, LAG(outcome) OVER w AS prev_outcome
    FROM lifecycle_events WINDOW w AS (PARTITION BY vm_id ORDER BY id)
  )
  WHERE prev_op IS NULL OR prev_op <> op OR prev_stage = 'total' OR (prev_outcome <> 'ok' AND stage NOT LIKE 'undo:%')
);
DROP INDEX lifecycle_events_vm;
CREATE INDEX lifecycle_events_vm_op ON lifecycle_events(vm_id, op_id);
UPDATE lifecycle_events SET op_id = (
  SELECT MAX(p.op_id) FROM lifecycle_events p WHERE p.vm_id = lifecycle_events.vm_id AND p.op_id <= lifecycle_events.id
) WHERE op_id IS NULL;

-- Operation ids come from here rather than MAX(op_id) + 1, so two plans that have not
-- recorded anything yet still get different ids. Starts above every id the rows above took.
CREATE TABLE counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
INSERT INTO counters (name, value) SELECT 'lifecycle_op', COALESCE(MAX(id), 0) FROM lifecycle_events;
`,
  },
  {
    // The state machine gained the transient states of start and stop (src/domain/vm-state.ts).
    version: 3,
    rebuildsTables: true,
    sql: `
CREATE TABLE vms_next (
  id                 TEXT PRIMARY KEY,
  name               TEXT NOT NULL UNIQUE,
  image_id           TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
  image_name         TEXT NOT NULL,
  state              TEXT NOT NULL CHECK (state IN ('creating', 'starting', 'running', 'stopping', 'stopped', 'failed', 'deleting')),
  vmm                TEXT NOT NULL CHECK (vmm IN ('firecracker', 'qemu')),
  vcpus              INTEGER NOT NULL,
  memory_mib         INTEGER NOT NULL,
  work_disk_gib      INTEGER NOT NULL,
  nat                INTEGER NOT NULL CHECK (nat IN (0, 1)),
  ip                 TEXT,
  mac                TEXT,
  tap                TEXT,
  pid                INTEGER,
  pid_start          INTEGER,
  dir                TEXT NOT NULL,
  vsock_cid          INTEGER,
  work_seed_fallback INTEGER NOT NULL CHECK (work_seed_fallback IN (0, 1)),
  created_at         TEXT NOT NULL,
  updated_at         TEXT NOT NULL,
  last_error         TEXT
);
INSERT INTO vms_next SELECT * FROM vms;
DROP TABLE vms;
ALTER TABLE vms_next RENAME TO vms;
CREATE INDEX vms_image ON vms(image_id);
`,
  },
  {
    // image build: the builder VM is a row like any other (leases, TAPs, reconcile work the same), marked by its role;
    // a built image records its parent, step digests and stage times.
    version: 4,
    sql: `
ALTER TABLE vms ADD COLUMN role TEXT CHECK (role IS NULL OR role IN ('builder'));
ALTER TABLE images ADD COLUMN build_json TEXT;
`,
  },
  {
    // Issue 11: host → guest port forwards and guest ↔ guest peers. Both go with their VM (cascade).
    version: 5,
    sql: `
CREATE TABLE port_forwards (
  vm_id        TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
  host_address TEXT NOT NULL,
  host_port    INTEGER NOT NULL CHECK (host_port BETWEEN 1 AND 65535),
  guest_port   INTEGER NOT NULL CHECK (guest_port BETWEEN 1 AND 65535),
  created_at   TEXT NOT NULL,
  PRIMARY KEY (host_address, host_port)
);
CREATE INDEX port_forwards_vm ON port_forwards(vm_id);

-- One row per unordered pair (a < b), so a peering is mutual by construction.
CREATE TABLE vm_peers (
  a TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
  b TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
  PRIMARY KEY (a, b),
  CHECK (a < b)
);
CREATE INDEX vm_peers_b ON vm_peers(b);
`,
  },
  {
    // Who created each VM (the API caller's uid and name, from the socket's peer credentials).
    // NULL for VMs made before: they count as root's.
    version: 6,
    sql: `
ALTER TABLE vms ADD COLUMN owner_uid INTEGER;
ALTER TABLE vms ADD COLUMN owner_name TEXT;
`,
  },
  {
    // Create from a golden snapshot: how each VM came up ("snapshot <id>", or why it booted cold). The snapshot's own
    // record is a file beside its files (app/snapshot-record.ts), so it goes with the image directory.
    version: 8,
    sql: `
ALTER TABLE vms ADD COLUMN boot_source TEXT;
`,
  },
  {
    // The paused-VM pool (app/vm-pool.ts): its members are rows like any VM, marked role 'pool'. SQLite cannot widen a
    // column's CHECK in place, so the table is rebuilt with the same columns in the same order.
    version: 9,
    rebuildsTables: true,
    sql: `
CREATE TABLE vms_next (
  id                 TEXT PRIMARY KEY,
  name               TEXT NOT NULL UNIQUE,
  image_id           TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
  image_name         TEXT NOT NULL,
  state              TEXT NOT NULL CHECK (state IN ('creating', 'starting', 'running', 'stopping', 'stopped', 'failed', 'deleting')),
  vmm                TEXT NOT NULL CHECK (vmm IN ('firecracker', 'qemu')),
  vcpus              INTEGER NOT NULL,
  memory_mib         INTEGER NOT NULL,
  work_disk_gib      INTEGER NOT NULL,
  nat                INTEGER NOT NULL CHECK (nat IN (0, 1)),
  ip                 TEXT,
  mac                TEXT,
  tap                TEXT,
  pid                INTEGER,
  pid_start          INTEGER,
  dir                TEXT NOT NULL,
  vsock_cid          INTEGER,
  work_seed_fallback INTEGER NOT NULL CHECK (work_seed_fallback IN (0, 1)),
  created_at         TEXT NOT NULL,
  updated_at         TEXT NOT NULL,
  last_error         TEXT,
  role               TEXT CHECK (role IS NULL OR role IN ('builder', 'pool')),
  owner_uid          INTEGER,
  owner_name         TEXT,
  boot_source        TEXT
);
INSERT INTO vms_next SELECT * FROM vms;
DROP TABLE vms;
ALTER TABLE vms_next RENAME TO vms;
CREATE INDEX vms_image ON vms(image_id);
`,
  },
  {
    // Images by digest (issue 20): the sha256 of each image's canonical boot-set manifest (domain/image-digest.ts),
    // where a pulled image came from, and when an image was last used, for LRU eviction of pulled images. Rows made
    // before get their digest from SqliteStore.open (it is computed from the artifacts, which SQL cannot do).
    version: 10,
    sql: `
ALTER TABLE images ADD COLUMN digest TEXT CHECK (digest IS NULL OR digest GLOB 'sha256:*');
ALTER TABLE images ADD COLUMN pulled_from TEXT;
ALTER TABLE images ADD COLUMN last_used_at TEXT;
CREATE INDEX images_digest ON images(digest);
`,
  },
];

export const LATEST_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

function userVersion(db: Database.Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

function tooNew(file: string, found: number, latest: number): BangerError {
  return new BangerError("SCHEMA_TOO_NEW", `database ${file} has schema version ${found} but this banger knows up to ${latest}`, {
    hint: "upgrade banger, or point state_dir at a fresh directory",
  });
}

/**
 * Brings the database up to LATEST_VERSION. Each step runs in its own
 * IMMEDIATE transaction and re-reads the version inside it, so two processes
 * opening a fresh file at once apply every step exactly once.
 */
export function migrate(db: Database.Database, file: string, migrations: readonly Migration[] = MIGRATIONS): number {
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  const start = userVersion(db);
  if (start > latest) throw tooNew(file, start, latest);
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  for (const m of ordered) {
    // Checked outside first so an up-to-date open takes no write lock (and never waits on another writer).
    if (userVersion(db) >= m.version) continue;
    // The pragma is a no-op inside a transaction, so it is switched around it.
    if (m.rebuildsTables) db.pragma("foreign_keys = OFF");
    try {
      db.transaction(() => {
        const current = userVersion(db);
        if (current > latest) throw tooNew(file, current, latest);
        if (current >= m.version) return;
        db.exec(m.sql);
        if (m.rebuildsTables) {
          const broken = db.pragma("foreign_key_check") as unknown[];
          if (broken.length > 0) throw new Error(`migration ${m.version} left ${broken.length} dangling foreign keys`);
        }
        // user_version lives in the file header and commits with the transaction.
        db.pragma(`user_version = ${m.version}`);
      }).immediate();
    } finally {
      if (m.rebuildsTables) db.pragma("foreign_keys = ON");
    }
  }
  return userVersion(db);
}
