import { applyMigrations, type Migration } from './apply-migrations.js';
import type { SqliteDatabase } from './database.js';

/**
 * Forward-only schema migrations. Never edit one that has shipped: add the next number.
 * They run inside one `BEGIN EXCLUSIVE` transaction, so two processes opening a new file at
 * the same moment cannot both migrate it.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO meta (key, value) VALUES ('registry_version', '0');

      CREATE TABLE destinations (
        name           TEXT PRIMARY KEY,
        types          TEXT NOT NULL,
        ordered        INTEGER NOT NULL,
        on_dead_letter TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        retired_at     INTEGER
      ) WITHOUT ROWID;

      CREATE TABLE events (
        seq            INTEGER PRIMARY KEY,
        event_id       TEXT NOT NULL,
        type           TEXT NOT NULL,
        key            TEXT,
        payload        TEXT NOT NULL,
        occurred_at    TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        source         TEXT,
        metadata       TEXT NOT NULL,
        received_at    INTEGER NOT NULL
      );
      CREATE INDEX events_event_id ON events (event_id);

      CREATE TABLE dedup (
        event_id TEXT PRIMARY KEY,
        seen_at  INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX dedup_seen_at ON dedup (seen_at);

      CREATE TABLE deliveries (
        id              INTEGER PRIMARY KEY,
        event_seq       INTEGER NOT NULL,
        destination     TEXT NOT NULL,
        order_key       TEXT,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        total_attempts  INTEGER NOT NULL DEFAULT 0,
        run_at          INTEGER NOT NULL,
        lease_token     TEXT,
        started_at      INTEGER,
        duration_ms     INTEGER,
        lease_expiries  INTEGER NOT NULL DEFAULT 0,
        replays         INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        first_failed_at INTEGER,
        last_failed_at  INTEGER,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        completed_at    INTEGER
      );
      CREATE INDEX deliveries_due ON deliveries (destination, run_at, id)
        WHERE state IN ('pending', 'retrying', 'processing');
      CREATE INDEX deliveries_key ON deliveries (destination, order_key, id)
        WHERE order_key IS NOT NULL AND state IN ('pending', 'blocked', 'retrying', 'processing', 'dead');
      CREATE INDEX deliveries_event ON deliveries (event_seq);

      CREATE TABLE attempts (
        delivery_id INTEGER NOT NULL,
        number      INTEGER NOT NULL,
        started_at  INTEGER NOT NULL,
        duration_ms INTEGER,
        outcome     TEXT NOT NULL,
        error       TEXT,
        PRIMARY KEY (delivery_id, number)
      ) WITHOUT ROWID;

      CREATE TABLE dead_letters (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id   INTEGER NOT NULL UNIQUE,
        destination   TEXT NOT NULL,
        event_type    TEXT NOT NULL,
        event_key     TEXT,
        error_message TEXT NOT NULL,
        dead_at       INTEGER NOT NULL
      );
      CREATE INDEX dead_letters_dead_at ON dead_letters (dead_at);
      CREATE INDEX dead_letters_destination ON dead_letters (destination, seq);
      CREATE INDEX dead_letters_type ON dead_letters (event_type, seq);
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Marks a file as a Steadfast event store ("STFD"). */
export const STORE_APPLICATION_ID = 0x53544644;

/** Brings an event-store file to the current schema (see `applyMigrations`). */
export function migrate(db: SqliteDatabase): number[] {
  return applyMigrations(db, {
    name: 'event store',
    applicationId: STORE_APPLICATION_ID,
    migrations: MIGRATIONS,
  });
}
