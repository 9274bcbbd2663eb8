import type { SqliteDatabase } from '../backends/sqlite/database.js';
import { applyMigrations, type Migration } from '../backends/sqlite/apply-migrations.js';

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
const AUDIT_MIGRATIONS: readonly Migration[] = [
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

/** Brings an audit file to the current schema; refuses any other kind of file. */
export function migrateAuditDatabase(db: SqliteDatabase): number[] {
  return applyMigrations(db, {
    name: 'audit database',
    applicationId: AUDIT_APPLICATION_ID,
    migrations: AUDIT_MIGRATIONS,
  });
}
