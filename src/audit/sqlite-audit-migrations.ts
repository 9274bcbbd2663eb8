import type { SqliteDatabase } from '../backends/sqlite/database.js';
import { BackendError } from '../errors.js';

/**
 * Marks a file as a Steadfast audit database (`PRAGMA application_id`, "SFAU"), so the audit
 * store never migrates the processor's own database or another application's file by mistake.
 */
export const AUDIT_APPLICATION_ID = 0x53464155;

/**
 * Forward-only migrations of the audit database. Never edit one that has shipped: add the
 * next number. Times are ISO-8601 UTC text (`timestamp`, `archived_at`), JSON columns hold
 * canonical JSON, `processing_latency` is in ms.
 */
const AUDIT_MIGRATIONS: readonly { readonly version: number; readonly sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE audit_log (
        id                   INTEGER PRIMARY KEY,
        event_id             TEXT NOT NULL UNIQUE,
        timestamp            TEXT NOT NULL,
        action               TEXT NOT NULL,
        principal_id         TEXT,
        organization_id      TEXT,
        target_resource_type TEXT,
        target_resource_id   TEXT,
        status               TEXT NOT NULL,
        outcome_description  TEXT,
        correlation_id       TEXT NOT NULL,
        data_classification  TEXT NOT NULL
          CHECK (data_classification IN ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'PHI')),
        retention_policy     TEXT NOT NULL,
        event_version        TEXT NOT NULL,
        session_context      TEXT,
        details              TEXT NOT NULL,
        processing_latency   INTEGER,
        archived_at          TEXT,
        hash                 TEXT NOT NULL,
        hash_algorithm       TEXT NOT NULL
      );
      CREATE INDEX audit_log_timestamp ON audit_log (timestamp, id);
      CREATE INDEX audit_log_correlation_id ON audit_log (correlation_id);
      CREATE INDEX audit_log_principal_id ON audit_log (principal_id, timestamp);
      CREATE INDEX audit_log_action ON audit_log (action, timestamp);
    `,
  },
];

/** The audit schema version this code writes (`PRAGMA user_version`). */
export const AUDIT_SCHEMA_VERSION = AUDIT_MIGRATIONS.length;

/**
 * Applies every audit migration newer than the file's `user_version`, inside one
 * `BEGIN EXCLUSIVE` transaction so two processes opening a new file cannot both migrate it.
 * Throws `BackendError` for a file that holds anything else (another application's tables, the
 * processor's own store) or a newer audit schema.
 * Returns the versions applied.
 */
export function migrateAuditDatabase(db: SqliteDatabase): number[] {
  const applied: number[] = [];
  db.exec('BEGIN EXCLUSIVE');
  try {
    const applicationId = db.pragma('application_id', { simple: true }) as number;
    const current = db.pragma('user_version', { simple: true }) as number;
    const fresh = applicationId === 0 && current === 0 && schemaObjects(db) === 0;
    if (applicationId !== AUDIT_APPLICATION_ID && !fresh) {
      throw new BackendError(
        `${db.name} is not a Steadfast audit database (application_id ${applicationId}, user_version ${current})`,
      );
    }
    if (current > AUDIT_SCHEMA_VERSION) {
      throw new BackendError(
        `the audit database schema is version ${current}, newer than this Steadfast understands (${AUDIT_SCHEMA_VERSION})`,
      );
    }
    for (const migration of AUDIT_MIGRATIONS) {
      if (migration.version <= current) continue;
      db.exec(migration.sql);
      applied.push(migration.version);
    }
    db.pragma(`application_id = ${AUDIT_APPLICATION_ID}`);
    db.pragma(`user_version = ${AUDIT_SCHEMA_VERSION}`);
    db.exec('COMMIT');
  } catch (error) {
    db.exec('ROLLBACK');
    throw error;
  }
  return applied;
}

function schemaObjects(db: SqliteDatabase): number {
  return (db.prepare('SELECT COUNT(*) AS n FROM sqlite_master').get() as { n: number }).n;
}
