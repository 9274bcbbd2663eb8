import { BackendError } from '../../errors.js';
import type { SqliteDatabase } from './database.js';

export interface Migration {
  readonly version: number;
  readonly sql: string;
}

export interface MigrationSet {
  /** What the file holds, for error messages: `event store`, `audit database`. */
  readonly name: string;
  /** `PRAGMA application_id` marking files of this kind; another kind's file is refused. */
  readonly applicationId: number;
  /** Forward-only, numbered from 1. Never edit one that has shipped: add the next. */
  readonly migrations: readonly Migration[];
}

function schemaObjects(db: SqliteDatabase): number {
  return (db.prepare('SELECT COUNT(*) AS n FROM sqlite_master').get() as { n: number }).n;
}

/**
 * Applies every migration newer than the file's `user_version`, inside one `BEGIN EXCLUSIVE`
 * transaction, so two processes opening a new file at the same moment cannot both migrate it.
 * Refuses a file of another kind (its `application_id`, or tables in a file never marked) and a
 * schema newer than this code. Returns the versions applied.
 */
export function applyMigrations(db: SqliteDatabase, set: MigrationSet): number[] {
  const target = set.migrations.length;
  const applied: number[] = [];
  db.exec('BEGIN EXCLUSIVE');
  try {
    const applicationId = db.pragma('application_id', { simple: true }) as number;
    const current = db.pragma('user_version', { simple: true }) as number;
    const fresh = applicationId === 0 && current === 0 && schemaObjects(db) === 0;
    if (applicationId !== set.applicationId && !fresh) {
      throw new BackendError(
        `${db.name} is not a Steadfast ${set.name} (application_id ${applicationId}, user_version ${current})`,
      );
    }
    if (current > target) {
      throw new BackendError(
        `the ${set.name} schema is version ${current}, newer than this Steadfast understands (${target})`,
      );
    }
    for (const migration of set.migrations) {
      if (migration.version <= current) continue;
      db.exec(migration.sql);
      applied.push(migration.version);
    }
    db.pragma(`application_id = ${set.applicationId}`);
    db.pragma(`user_version = ${target}`);
    db.exec('COMMIT');
  } catch (error) {
    db.exec('ROLLBACK');
    throw error;
  }
  return applied;
}
