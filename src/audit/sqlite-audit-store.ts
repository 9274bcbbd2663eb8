import { z } from 'zod';
import { openDatabase, StatementCache, type SqliteDatabase } from '../backends/sqlite/database.js';
import { InvalidOptionError, isSteadfastError, NotFoundError, ValidationError } from '../errors.js';
import type { JsonObject } from '../json.js';
import {
  AUDIT_HASH_ALGORITHM,
  auditHash,
  type AuditRecord,
  type AuditRecordContent,
  type DataClassification,
} from './audit-record.js';
import { AuditStoreError } from './audit-store-error.js';
import { canonicalJson } from './canonical-json.js';
import { migrateAuditDatabase } from './sqlite-audit-migrations.js';

/** Where the audit database lives unless told otherwise: beside the processor's `./data/steadfast.db`. */
export const DEFAULT_AUDIT_DB_PATH = './data/audit.db';

export const AUDIT_STORE_DEFAULTS = {
  path: DEFAULT_AUDIT_DB_PATH,
  busyTimeoutMs: 5000,
  listLimit: 50,
  maxListLimit: 1000,
} as const;

export interface SqliteAuditStoreOptions {
  /** The SQLite file; it and its folder are created on first `open()`. default `./data/audit.db` */
  readonly path?: string;
  /** How long a write waits for another process's write lock. default 5000 */
  readonly busyTimeoutMs?: number;
}

/** Filters of `list`. Times are ms since epoch or ISO-8601 strings. */
export interface AuditListQuery {
  /** Records whose `timestamp` is at or after this time. */
  readonly since?: number | string;
  /** Records whose `timestamp` is before this time. */
  readonly until?: number | string;
  /** Exact `action` (event type). */
  readonly action?: string;
  readonly principalId?: string;
  /** Most records answered. default 50, at most 1000 */
  readonly limit?: number;
}

/** The answer of `verify`. */
export interface AuditVerification {
  /** The stored hash matches the stored content, and the algorithm is SHA-256. */
  readonly ok: boolean;
  /** The hash written with the record. */
  readonly expected: string;
  /** The hash of the content as it is stored now; `null` when the row no longer decodes (e.g. `details` is not JSON). */
  readonly actual: string | null;
}

interface AuditRow {
  readonly id: number;
  readonly event_id: string;
  readonly timestamp: string;
  readonly action: string;
  readonly principal_id: string | null;
  readonly organization_id: string | null;
  readonly target_resource_type: string | null;
  readonly target_resource_id: string | null;
  readonly status: string;
  readonly outcome_description: string | null;
  readonly correlation_id: string;
  readonly data_classification: string;
  readonly retention_policy: string;
  readonly event_version: string;
  readonly session_context: string | null;
  readonly details: string;
  readonly processing_latency: number | null;
  readonly archived_at: string | null;
  readonly hash: string;
  readonly hash_algorithm: string;
}

const INSERT = `
  INSERT INTO audit_log (
    event_id, timestamp, action, principal_id, organization_id, target_resource_type,
    target_resource_id, status, outcome_description, correlation_id, data_classification,
    retention_policy, event_version, session_context, details, processing_latency, archived_at,
    hash, hash_algorithm
  ) VALUES (
    @eventId, @timestamp, @action, @principalId, @organizationId, @targetResourceType,
    @targetResourceId, @status, @outcomeDescription, @correlationId, @dataClassification,
    @retentionPolicy, @eventVersion, @sessionContext, @details, @processingLatency, @archivedAt,
    @hash, @hashAlgorithm
  )
  ON CONFLICT (event_id) DO NOTHING`;

const timeBound = z.union([z.number().finite(), z.iso.datetime({ offset: true })]);

const listQuerySchema = z.strictObject({
  since: timeBound.optional(),
  until: timeBound.optional(),
  action: z.string().min(1).optional(),
  principalId: z.string().min(1).optional(),
  limit: z.int().min(1).max(AUDIT_STORE_DEFAULTS.maxListLimit).optional(),
});

function toIso(bound: number | string): string {
  return new Date(typeof bound === 'number' ? bound : Date.parse(bound)).toISOString();
}

function decodeContent(row: AuditRow): AuditRecordContent {
  return {
    eventId: row.event_id,
    timestamp: row.timestamp,
    action: row.action,
    principalId: row.principal_id,
    organizationId: row.organization_id,
    targetResourceType: row.target_resource_type,
    targetResourceId: row.target_resource_id,
    status: row.status,
    outcomeDescription: row.outcome_description,
    correlationId: row.correlation_id,
    dataClassification: row.data_classification as DataClassification,
    retentionPolicy: row.retention_policy,
    eventVersion: row.event_version,
    sessionContext: row.session_context === null ? null : (JSON.parse(row.session_context) as JsonObject),
    details: JSON.parse(row.details) as JsonObject,
  };
}

function decodeRecord(row: AuditRow): AuditRecord {
  let content: AuditRecordContent;
  try {
    content = decodeContent(row);
  } catch (error) {
    throw new AuditStoreError(`audit store: the record of event ${row.event_id} does not decode`, {
      retryable: false,
      cause: error,
    });
  }
  return {
    ...content,
    processingLatencyMs: row.processing_latency,
    archivedAt: row.archived_at,
    hash: row.hash,
    hashAlgorithm: row.hash_algorithm,
  };
}

/**
 * The embedded audit log: one SQLite file of its own (WAL, `synchronous=FULL`, numbered
 * migrations), one row per event, written once and never updated by Steadfast. Every row
 * carries a SHA-256 hash of its content so `verify` can tell when it was changed afterwards.
 *
 * All methods are synchronous (better-sqlite3). Call `open()` before use and `close()` when done.
 * Failures of the database throw `AuditStoreError` (a `BackendError`), marked `retryable` when
 * another attempt may succeed (busy, locked, I/O error, disk full, store not open).
 */
export class SqliteAuditStore {
  /** The SQLite file. */
  readonly path: string;
  private readonly busyTimeoutMs: number;
  private db: SqliteDatabase | null = null;
  private statements: StatementCache | null = null;

  constructor(options: SqliteAuditStoreOptions = {}) {
    this.path = options.path ?? AUDIT_STORE_DEFAULTS.path;
    this.busyTimeoutMs = options.busyTimeoutMs ?? AUDIT_STORE_DEFAULTS.busyTimeoutMs;
    if (typeof this.path !== 'string' || this.path.length === 0) {
      throw new InvalidOptionError('audit store: path must be a non-empty string');
    }
    if (!Number.isInteger(this.busyTimeoutMs) || this.busyTimeoutMs < 0) {
      throw new InvalidOptionError(
        `audit store: busyTimeoutMs must be an integer >= 0, got ${String(this.busyTimeoutMs)}`,
      );
    }
  }

  /** Whether `open()` has been called and `close()` has not. */
  get isOpen(): boolean {
    return this.db !== null;
  }

  /** Opens (creating the file and folders if needed) and migrates the database. Idempotent. */
  open(): void {
    if (this.db) return;
    let db: SqliteDatabase | null = null;
    try {
      db = openDatabase({ path: this.path, busyTimeoutMs: this.busyTimeoutMs });
      migrateAuditDatabase(db);
    } catch (error) {
      db?.close();
      // A foreign or newer file is already a BackendError that says so; wrap the rest.
      throw isSteadfastError(error) ? error : AuditStoreError.from('open', error);
    }
    this.db = db;
    this.statements = new StatementCache(db);
  }

  /** Closes the database. Idempotent; the store may be opened again. */
  close(): void {
    const db = this.db;
    this.db = null;
    this.statements = null;
    db?.close();
  }

  /**
   * Writes the record unless one with its `eventId` is already there (a redelivery): answers
   * `{ inserted: false }` then, leaving the first record as it was. The write is on disk when
   * this returns. Throws `ValidationError` (field `hash`) when the record's hash does not match
   * its content, so a stored hash always vouches for what was written.
   */
  append(record: AuditRecord): { inserted: boolean } {
    if (record.hashAlgorithm !== AUDIT_HASH_ALGORITHM || record.hash !== auditHash(record)) {
      throw new ValidationError([
        {
          field: 'hash',
          message: `does not match the content of the audit record of event ${record.eventId}`,
        },
      ]);
    }
    const params = {
      eventId: record.eventId,
      timestamp: record.timestamp,
      action: record.action,
      principalId: record.principalId,
      organizationId: record.organizationId,
      targetResourceType: record.targetResourceType,
      targetResourceId: record.targetResourceId,
      status: record.status,
      outcomeDescription: record.outcomeDescription,
      correlationId: record.correlationId,
      dataClassification: record.dataClassification,
      retentionPolicy: record.retentionPolicy,
      eventVersion: record.eventVersion,
      sessionContext: record.sessionContext === null ? null : canonicalJson(record.sessionContext),
      details: canonicalJson(record.details),
      processingLatency: record.processingLatencyMs,
      archivedAt: record.archivedAt,
      hash: record.hash,
      hashAlgorithm: record.hashAlgorithm,
    };
    const info = this.run('append', (s) => s.get(INSERT).run(params));
    return { inserted: info.changes === 1 };
  }

  /** The record of an event, or `null` if there is none. */
  get(eventId: string): AuditRecord | null {
    const row = this.run('get', (s) => s.get('SELECT * FROM audit_log WHERE event_id = ?').get(eventId)) as
      AuditRow | undefined;
    return row ? decodeRecord(row) : null;
  }

  /**
   * Records matching every given filter, newest `timestamp` first. Throws `InvalidOptionError`
   * naming a bad filter.
   */
  list(query: AuditListQuery = {}): AuditRecord[] {
    const parsed = listQuerySchema.safeParse(query);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.join('.') || '(query)';
      throw new InvalidOptionError(`audit list: ${field}: ${issue?.message ?? 'invalid'}`);
    }
    const q = parsed.data;
    const where: string[] = [];
    const params: Record<string, string | number> = {
      limit: q.limit ?? AUDIT_STORE_DEFAULTS.listLimit,
    };
    if (q.since !== undefined) {
      where.push('timestamp >= @since');
      params.since = toIso(q.since);
    }
    if (q.until !== undefined) {
      where.push('timestamp < @until');
      params.until = toIso(q.until);
    }
    if (q.action !== undefined) {
      where.push('action = @action');
      params.action = q.action;
    }
    if (q.principalId !== undefined) {
      where.push('principal_id = @principalId');
      params.principalId = q.principalId;
    }
    const sql =
      `SELECT * FROM audit_log${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''}` +
      ' ORDER BY timestamp DESC, id DESC LIMIT @limit';
    const rows = this.run('list', (s) => s.get(sql).all(params)) as AuditRow[];
    return rows.map(decodeRecord);
  }

  /**
   * Recomputes the hash of an event's record from what is stored now and compares it with the
   * hash written with it. `ok: false` means the row was changed after it was written.
   * Throws `NotFoundError` if the event has no record.
   */
  verify(eventId: string): AuditVerification {
    const row = this.run('verify', (s) =>
      s.get('SELECT * FROM audit_log WHERE event_id = ?').get(eventId),
    ) as AuditRow | undefined;
    if (!row) throw new NotFoundError(`no audit record for event ${eventId}`);
    let actual: string | null;
    try {
      actual = auditHash(decodeContent(row));
    } catch {
      actual = null;
    }
    return {
      ok: row.hash_algorithm === AUDIT_HASH_ALGORITHM && actual === row.hash,
      expected: row.hash,
      actual,
    };
  }

  /** How many records the log holds. */
  count(): number {
    const row = this.run('count', (s) => s.get('SELECT COUNT(*) AS n FROM audit_log').get()) as {
      n: number;
    };
    return row.n;
  }

  private run<T>(action: string, fn: (statements: StatementCache) => T): T {
    const statements = this.statements;
    if (!statements) {
      throw new AuditStoreError(`audit store ${this.path} is not open: call open() first`, {
        retryable: true,
      });
    }
    try {
      return fn(statements);
    } catch (error) {
      throw AuditStoreError.from(action, error);
    }
  }
}
