import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDatabase = Database.Database;
export type SqliteStatement = Database.Statement;

export interface OpenOptions {
  readonly path: string;
  /** How long a write waits for another process's write lock before failing. */
  readonly busyTimeoutMs: number;
}

/**
 * Opens the file in WAL mode with `synchronous=FULL`: a commit returns only once it is on
 * disk. Several processes may open the same file; SQLite serialises their writes.
 */
export function openDatabase(options: OpenOptions): SqliteDatabase {
  if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
  const db = new Database(options.path, { timeout: options.busyTimeoutMs });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = OFF');
  db.pragma('temp_store = MEMORY');
  db.pragma('cache_size = -32000');
  return db;
}

/** Prepares each SQL text once per connection. */
export class StatementCache {
  private readonly cache = new Map<string, SqliteStatement>();

  constructor(private readonly db: SqliteDatabase) {}

  get(sql: string): SqliteStatement {
    let statement = this.cache.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.cache.set(sql, statement);
    }
    return statement;
  }
}
