import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { waitFor } from '../../test/support/wait-for.js';
import { AuditStoreError } from '../audit/audit-store-error.js';
import { SqliteAuditStore } from '../audit/sqlite-audit-store.js';
import { ManualClock } from '../clock.js';
import type { HandlerContext } from '../core/destination.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import { PermanentError, ValidationError } from '../errors.js';
import type { SteadfastEvent } from '../event.js';
import type { JsonValue } from '../json.js';
import { createLogger } from '../observability/logger.js';
import { createRetryPolicy } from '../policies/retry-policy.js';
import { createAuditLogDestination } from './audit-log.js';

function context(attempt = 1): HandlerContext {
  return {
    attempt,
    deliveryId: 'direct',
    destination: 'audit',
    signal: new AbortController().signal,
    logger: createLogger(false),
  };
}

function event(eventId: string, payload: JsonValue): SteadfastEvent {
  return {
    eventId,
    type: 'record.read',
    payload,
    key: null,
    occurredAt: '2026-01-01T00:00:00.000Z',
    receivedAt: '2026-01-01T00:00:00.000Z',
    correlationId: 'corr-1',
    source: null,
    metadata: { via: 'test' },
  };
}

async function rejection(promise: Promise<unknown> | unknown): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('createAuditLogDestination', () => {
  let dir: ReturnType<typeof tempDir>;
  let store: SqliteAuditStore;

  beforeEach(() => {
    dir = tempDir('steadfast-audit-dest-');
    store = new SqliteAuditStore({ path: join(dir.path, 'audit.db') });
    store.open();
  });

  afterEach(() => {
    store.close();
    dir.remove();
  });

  it('appends the record of an event; handling it again is a success that writes nothing', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00.042Z'));
    const handler = createAuditLogDestination({ store, clock });
    const e = event('e1', { principalId: 'u-1', dataClassification: 'PHI', field: 'dob' });
    expect(await handler(e, context())).toEqual({ inserted: true });
    clock.advance(1000);
    expect(await handler(e, context(2))).toEqual({ inserted: false });
    expect(store.count()).toBe(1);
    expect(store.get('e1')).toMatchObject({
      principalId: 'u-1',
      dataClassification: 'PHI',
      details: { payload: { field: 'dob' }, metadata: { via: 'test' } },
      processingLatencyMs: 42,
    });
  });

  it('throws PermanentError naming the field for a bad audit field, and writes nothing', async () => {
    const handler = createAuditLogDestination({ store });
    const error = await rejection(handler(event('e1', { dataClassification: 'SECRET' }), context()));
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).message).toMatch(/^audit-log: payload\.dataClassification: /);
    expect((error as PermanentError).cause).toBeInstanceOf(ValidationError);
    expect(((error as PermanentError).cause as ValidationError).field).toBe('payload.dataClassification');
    expect(createRetryPolicy().isRetryable(error)).toBe(false);

    const notObject = await rejection(handler(event('e2', ['a']), context()));
    expect(notObject).toBeInstanceOf(PermanentError);
    expect((notObject as PermanentError).message).toMatch(/^audit-log: payload: /);
    expect(store.count()).toBe(0);
  });

  it('fails retryably when the store cannot be written', async () => {
    store.close();
    const handler = createAuditLogDestination({ store });
    const error = await rejection(handler(event('e1', {}), context()));
    expect(error).toBeInstanceOf(AuditStoreError);
    expect(createRetryPolicy().isRetryable(error)).toBe(true);
  });
});

describe('audit-log destination through the processor (SQLite end to end)', () => {
  let dir: ReturnType<typeof tempDir>;
  let store: SqliteAuditStore;
  let processor: ReliableEventProcessor;

  beforeEach(() => {
    dir = tempDir('steadfast-audit-e2e-');
    store = new SqliteAuditStore({ path: join(dir.path, 'audit.db') });
    store.open();
    processor = createProcessor({
      storage: { kind: 'sqlite', path: join(dir.path, 'steadfast.db') },
      logger: false,
    });
  });

  afterEach(async () => {
    await processor.stop();
    store.close();
    dir.remove();
  });

  it('records every event exactly once, with its fields, a verifiable hash, and dead-letters a bad one', async () => {
    const handler = createAuditLogDestination({ store });
    processor.destination('audit', {}, handler);
    await processor.start();

    const N = 25;
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const result = await processor.addEvent({
        type: i % 2 === 0 ? 'patient.viewed' : 'patient.updated',
        correlationId: `req-${i}`,
        occurredAt: `2026-03-01T10:00:${String(i).padStart(2, '0')}+01:00`,
        metadata: { tenant: 'clinic-1' },
        payload: {
          principalId: `user-${i % 3}`,
          organizationId: 'org-1',
          targetResourceType: 'Patient',
          targetResourceId: `p-${i}`,
          dataClassification: 'PHI',
          outcomeDescription: `step ${i}`,
          sessionContext: { ip: '10.0.0.1' },
          fieldsTouched: ['name', 'dob'],
        },
      });
      ids.push(result.eventId);
    }
    const bad = await processor.addEvent({
      type: 'patient.viewed',
      payload: { dataClassification: 'SECRET' },
    });

    await waitFor(() => store.count() === N, { message: `${N} audit records` });
    await waitFor(
      async () => (await processor.deadLetters.list({ destination: 'audit' })).items.length === 1,
      {
        message: 'the SECRET event dead-lettered',
      },
    );
    await waitFor(
      async () =>
        (await Promise.all(ids.map((id) => processor.getEvent(id)))).every(
          (r) => r?.deliveries[0]?.state === 'succeeded',
        ),
      { message: 'every good delivery succeeded' },
    );

    // Fields mapped.
    const third = store.get(ids[3]!);
    expect(third).toMatchObject({
      eventId: ids[3],
      action: 'patient.updated',
      timestamp: '2026-03-01T09:00:03.000Z',
      correlationId: 'req-3',
      principalId: 'user-0',
      organizationId: 'org-1',
      targetResourceType: 'Patient',
      targetResourceId: 'p-3',
      status: 'success',
      outcomeDescription: 'step 3',
      dataClassification: 'PHI',
      retentionPolicy: 'standard',
      eventVersion: '1.0',
      sessionContext: { ip: '10.0.0.1' },
      details: { payload: { fieldsTouched: ['name', 'dob'] }, metadata: { tenant: 'clinic-1' } },
      archivedAt: null,
      hashAlgorithm: 'SHA-256',
    });
    expect(third!.processingLatencyMs).toBeGreaterThanOrEqual(0);
    expect(store.list({ principalId: 'user-1', limit: 1000 })).toHaveLength(8);

    // Handled twice more (a redelivery): still exactly one record per event.
    const stored = await processor.getEvent(ids[0]!);
    expect(await handler(stored!.event, context(2))).toEqual({ inserted: false });
    expect(await handler(stored!.event, context(3))).toEqual({ inserted: false });
    expect(await processor.addEvent({ eventId: ids[0]!, type: 'patient.viewed', payload: {} })).toMatchObject(
      {
        duplicate: true,
      },
    );
    expect(store.count()).toBe(N);
    const raw = new Database(join(dir.path, 'audit.db'));
    expect(
      raw.prepare('SELECT COUNT(DISTINCT event_id) AS n, COUNT(*) AS total FROM audit_log').get(),
    ).toEqual({
      n: N,
      total: N,
    });

    // Every hash verifies; a row changed behind the store's back does not.
    expect(ids.every((id) => store.verify(id).ok)).toBe(true);
    raw
      .prepare(`UPDATE audit_log SET details = '{"metadata":{},"payload":{}}' WHERE event_id = ?`)
      .run(ids[5]);
    raw.close();
    expect(store.verify(ids[5]!).ok).toBe(false);
    expect(ids.filter((id) => !store.verify(id).ok)).toEqual([ids[5]]);

    // The SECRET event: dead-lettered after one attempt, never recorded.
    const [dead] = (await processor.deadLetters.list({ destination: 'audit' })).items;
    const letter = await processor.deadLetters.get(dead!.id);
    expect(letter).toMatchObject({ attempts: 1, event: { eventId: bad.eventId } });
    expect(letter!.error.name).toBe('PermanentError');
    expect(letter!.error.message).toMatch(/payload\.dataClassification/);
    expect(letter!.history).toHaveLength(1);
    expect(store.get(bad.eventId)).toBeNull();
  });
});
