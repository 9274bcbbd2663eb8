import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { createRetryPolicy } from '../policies/retry-policy.js';
import { BackendError, InvalidOptionError, NotFoundError, ValidationError } from '../errors.js';
import type { SteadfastEvent } from '../event.js';
import type { JsonValue } from '../json.js';
import { toAuditRecord, type AuditRecord } from './audit-record.js';
import { AuditStoreError } from './audit-store-error.js';
import { AUDIT_APPLICATION_ID, AUDIT_SCHEMA_VERSION } from './sqlite-audit-migrations.js';
import { SqliteAuditStore } from './sqlite-audit-store.js';

function record(
  eventId: string,
  payload: JsonValue = {},
  overrides: Partial<SteadfastEvent> = {},
  now = Date.parse('2026-01-01T00:00:00.100Z'),
): AuditRecord {
  return toAuditRecord(
    {
      eventId,
      type: 'user.login',
      payload,
      key: null,
      occurredAt: '2026-01-01T00:00:00.000Z',
      receivedAt: '2026-01-01T00:00:00.000Z',
      correlationId: `corr-${eventId}`,
      source: null,
      metadata: {},
      ...overrides,
    },
    now,
  );
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

describe('SqliteAuditStore', () => {
  let dir: ReturnType<typeof tempDir>;
  let path: string;
  const opened: SqliteAuditStore[] = [];

  const open = (options: { busyTimeoutMs?: number } = {}) => {
    const store = new SqliteAuditStore({ path, ...options });
    opened.push(store);
    store.open();
    return store;
  };

  beforeEach(() => {
    dir = tempDir('steadfast-audit-');
    path = join(dir.path, 'nested', 'audit.db');
  });

  afterEach(() => {
    for (const store of opened.splice(0)) store.close();
    dir.remove();
  });

  it('creates its own file and folders in WAL mode, marked as an audit database', () => {
    open();
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.pragma('user_version', { simple: true })).toBe(AUDIT_SCHEMA_VERSION);
    expect(raw.pragma('application_id', { simple: true })).toBe(AUDIT_APPLICATION_ID);
    const columns = (raw.pragma('table_info(audit_log)') as { name: string; notnull: number }[]).map(
      (c) => c.name,
    );
    expect(columns).toEqual([
      'id',
      'event_id',
      'timestamp',
      'action',
      'principal_id',
      'organization_id',
      'target_resource_type',
      'target_resource_id',
      'status',
      'outcome_description',
      'correlation_id',
      'data_classification',
      'retention_policy',
      'event_version',
      'session_context',
      'details',
      'processing_latency',
      'archived_at',
      'hash',
      'hash_algorithm',
    ]);
    const indexes = (raw.pragma('index_list(audit_log)') as { name: string; unique: number }[]).map(
      (i) => i.name,
    );
    expect(indexes).toEqual(
      expect.arrayContaining([
        'audit_log_timestamp',
        'audit_log_correlation_id',
        'audit_log_principal_id',
        'audit_log_action',
      ]),
    );
    // event_id is UNIQUE (an automatic index).
    expect(raw.pragma('index_list(audit_log)')).toContainEqual(
      expect.objectContaining({ unique: 1, origin: 'u' }),
    );
    raw.close();
  });

  it('defaults to ./data/audit.db', () => {
    expect(new SqliteAuditStore().path).toBe('./data/audit.db');
  });

  it('appends once per event id: a second append of the same event answers inserted: false', () => {
    const store = open();
    const first = record('e1', { principalId: 'u-1' });
    expect(store.append(first)).toEqual({ inserted: true });
    const again = record('e1', { principalId: 'u-1' }, {}, Date.parse('2026-01-01T00:00:09.000Z'));
    expect(store.append(again)).toEqual({ inserted: false });
    expect(store.count()).toBe(1);
    expect(store.get('e1')?.processingLatencyMs).toBe(100);
  });

  it('reads back exactly what it wrote', () => {
    const store = open();
    const written = record('e1', {
      principalId: 'u-1',
      organizationId: 'o-1',
      targetResourceType: 'Patient',
      targetResourceId: 'p-7',
      status: 'failure',
      outcomeDescription: 'denied',
      dataClassification: 'PHI',
      retentionPolicy: 'hipaa',
      eventVersion: '2.0',
      sessionContext: { ip: '10.0.0.1', geo: { country: 'SE' } },
      reason: ['a', 1, null, true],
    });
    store.append(written);
    expect(store.get('e1')).toEqual(written);
    expect(store.get('missing')).toBeNull();
  });

  it('survives close and reopen without migrating again', () => {
    const store = open();
    store.append(record('e1'));
    store.close();
    expect(existsSync(path)).toBe(true);
    store.open();
    expect(store.count()).toBe(1);
    expect(store.verify('e1').ok).toBe(true);
  });

  it('lists newest first, filtered by time range, action and principal, up to a limit', () => {
    const store = open();
    const at = (minute: number) => `2026-01-01T00:0${minute}:00.000Z`;
    store.append(record('a', { principalId: 'alice' }, { occurredAt: at(1), type: 'login' }));
    store.append(record('b', { principalId: 'bob' }, { occurredAt: at(2), type: 'login' }));
    store.append(record('c', { principalId: 'alice' }, { occurredAt: at(3), type: 'logout' }));
    // An offset is normalised to UTC, so ranges compare instants, not texts.
    store.append(
      record('d', { principalId: 'alice' }, { occurredAt: '2026-01-01T02:04:00+02:00', type: 'login' }),
    );

    const ids = (q: Parameters<SqliteAuditStore['list']>[0]) => store.list(q).map((r) => r.eventId);
    expect(ids({})).toEqual(['d', 'c', 'b', 'a']);
    expect(ids({ since: at(2), until: Date.parse(at(4)) })).toEqual(['c', 'b']);
    expect(ids({ action: 'login' })).toEqual(['d', 'b', 'a']);
    expect(ids({ principalId: 'alice', action: 'login' })).toEqual(['d', 'a']);
    expect(ids({ limit: 2 })).toEqual(['d', 'c']);
  });

  it('refuses a bad list filter, naming it', () => {
    const store = open();
    expect(() => store.list({ limit: 0 })).toThrow(InvalidOptionError);
    expect(() => store.list({ limit: 1001 })).toThrow(/limit/);
    expect(() => store.list({ since: 'yesterday' })).toThrow(/since/);
    expect(() => store.list({ actor: 'x' } as never)).toThrow(InvalidOptionError);
  });

  it('verifies a record, and reports one changed after it was written', () => {
    const store = open();
    const written = record('e1', { principalId: 'u-1', note: 'original' });
    store.append(written);
    store.append(record('e2'));
    expect(store.verify('e1')).toEqual({ ok: true, expected: written.hash, actual: written.hash });

    const raw = new Database(path);
    // Archiving (and latency) is outside the hash.
    raw.prepare(`UPDATE audit_log SET archived_at = '2027-01-01T00:00:00.000Z' WHERE event_id = 'e1'`).run();
    expect(store.verify('e1').ok).toBe(true);

    raw
      .prepare(
        `UPDATE audit_log SET details = '{"metadata":{},"payload":{"note":"edited"}}' WHERE event_id = 'e1'`,
      )
      .run();
    const tampered = store.verify('e1');
    expect(tampered.ok).toBe(false);
    expect(tampered.expected).toBe(written.hash);
    expect(tampered.actual).toMatch(/^[0-9a-f]{64}$/);
    expect(tampered.actual).not.toBe(written.hash);

    raw.prepare(`UPDATE audit_log SET principal_id = 'u-2' WHERE event_id = 'e2'`).run();
    expect(store.verify('e2').ok).toBe(false);
    raw
      .prepare(`UPDATE audit_log SET principal_id = NULL, hash_algorithm = 'MD5' WHERE event_id = 'e2'`)
      .run();
    expect(store.verify('e2').ok).toBe(false);

    raw.prepare(`UPDATE audit_log SET details = 'not json' WHERE event_id = 'e1'`).run();
    expect(store.verify('e1')).toEqual({ ok: false, expected: written.hash, actual: null });
    expect(() => store.get('e1')).toThrow(AuditStoreError);
    raw.close();

    expect(() => store.verify('nope')).toThrow(NotFoundError);
  });

  it('refuses a record whose hash does not match its content', () => {
    const store = open();
    const forged = { ...record('e1'), principalId: 'someone-else' };
    const error = thrown(() => store.append(forged));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe('hash');
    expect(store.count()).toBe(0);
  });

  it('fails with a retryable AuditStoreError when not open or when the database is locked', () => {
    const closed = new SqliteAuditStore({ path });
    const notOpen = thrown(() => closed.append(record('e1')));
    expect(notOpen).toBeInstanceOf(AuditStoreError);
    expect(notOpen).toBeInstanceOf(BackendError);
    expect((notOpen as AuditStoreError).retryable).toBe(true);

    const store = open({ busyTimeoutMs: 0 });
    const holder = new Database(path);
    holder.exec('BEGIN EXCLUSIVE');
    try {
      const busy = thrown(() => store.append(record('e1')));
      expect(busy).toBeInstanceOf(AuditStoreError);
      expect((busy as AuditStoreError).retryable).toBe(true);
      expect((busy as AuditStoreError).message).toMatch(/append failed/);
      // The default retry policy retries it (its code alone, backend_error, would not be).
      expect(createRetryPolicy().isRetryable(busy)).toBe(true);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    expect(store.append(record('e1'))).toEqual({ inserted: true });
  });

  it('refuses to open a file that is not an audit database, and leaves it alone', () => {
    const foreign = join(dir.path, 'foreign.db');
    const other = new Database(foreign);
    other.exec('CREATE TABLE events (id INTEGER PRIMARY KEY)');
    other.close();
    const store = new SqliteAuditStore({ path: foreign });
    expect(() => store.open()).toThrow(/not a Steadfast audit database/);
    expect(store.isOpen).toBe(false);
    const check = new Database(foreign, { readonly: true });
    expect(check.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all()).toEqual([
      { name: 'events' },
    ]);
    check.close();
  });

  it('refuses a file written by a newer audit schema', () => {
    open().close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${AUDIT_SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => new SqliteAuditStore({ path }).open()).toThrow(BackendError);
  });

  it('validates its options at construction', () => {
    expect(() => new SqliteAuditStore({ path: '' })).toThrow(InvalidOptionError);
    expect(() => new SqliteAuditStore({ path, busyTimeoutMs: -1 })).toThrow(/busyTimeoutMs/);
  });
});
