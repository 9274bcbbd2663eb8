import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../errors.js';
import type { SteadfastEvent } from '../event.js';
import type { JsonValue } from '../json.js';
import { AUDIT_RECORD_DEFAULTS, auditHash, toAuditRecord, type AuditRecord } from './audit-record.js';

function event(payload: JsonValue, overrides: Partial<SteadfastEvent> = {}): SteadfastEvent {
  return {
    eventId: 'evt-1',
    type: 'user.login',
    payload,
    key: null,
    occurredAt: '2026-01-01T12:00:00+02:00',
    receivedAt: '2026-01-01T10:00:01.000Z',
    correlationId: 'corr-1',
    source: 'auth',
    metadata: { tenant: 't1' },
    ...overrides,
  };
}

const NOW = Date.parse('2026-01-01T10:00:01.250Z');

const FULL_PAYLOAD: JsonValue = {
  principalId: 'u-1',
  organizationId: 'org-1',
  targetResourceType: 'Session',
  targetResourceId: 's-9',
  outcomeDescription: 'logged in',
  dataClassification: 'CONFIDENTIAL',
  sessionContext: { ip: '10.0.0.1' },
  method: 'password',
};

function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error('expected a ValidationError');
}

describe('toAuditRecord', () => {
  it('maps the event and the audit fields of its payload', () => {
    const record = toAuditRecord(event(FULL_PAYLOAD), NOW);
    expect(record).toEqual({
      eventId: 'evt-1',
      timestamp: '2026-01-01T10:00:00.000Z',
      action: 'user.login',
      principalId: 'u-1',
      organizationId: 'org-1',
      targetResourceType: 'Session',
      targetResourceId: 's-9',
      status: 'success',
      outcomeDescription: 'logged in',
      correlationId: 'corr-1',
      dataClassification: 'CONFIDENTIAL',
      retentionPolicy: 'standard',
      eventVersion: '1.0',
      sessionContext: { ip: '10.0.0.1' },
      details: { payload: { method: 'password' }, metadata: { tenant: 't1' } },
      processingLatencyMs: 250,
      archivedAt: null,
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      hashAlgorithm: 'SHA-256',
    });
  });

  it('hashes the canonical JSON of the content fields (known value)', () => {
    // Written out by hand: keys sorted, no whitespace, latency/archivedAt/hash left out.
    const canonical =
      '{"action":"user.login","correlationId":"corr-1","dataClassification":"CONFIDENTIAL",' +
      '"details":{"metadata":{"tenant":"t1"},"payload":{"method":"password"}},"eventId":"evt-1",' +
      '"eventVersion":"1.0","organizationId":"org-1","outcomeDescription":"logged in","principalId":"u-1",' +
      '"retentionPolicy":"standard","sessionContext":{"ip":"10.0.0.1"},"status":"success",' +
      '"targetResourceId":"s-9","targetResourceType":"Session","timestamp":"2026-01-01T10:00:00.000Z"}';
    const independent = createHash('sha256').update(canonical).digest('hex');
    // Also computed outside Node (Python hashlib) so a shared bug cannot hide.
    expect(independent).toBe('d5a00012d2159604619cd6ce151366e2c0a3adce4e66f04f38959fdec89c3d59');
    expect(toAuditRecord(event(FULL_PAYLOAD), NOW).hash).toBe(independent);
  });

  it('fills the defaults when the payload carries no audit fields, or null ones', () => {
    for (const payload of [
      {},
      { status: null, dataClassification: null, principalId: null },
    ] as JsonValue[]) {
      const record = toAuditRecord(event(payload, { metadata: {} }), NOW);
      expect(record).toMatchObject({
        status: AUDIT_RECORD_DEFAULTS.status,
        dataClassification: 'INTERNAL',
        retentionPolicy: 'standard',
        eventVersion: '1.0',
        principalId: null,
        organizationId: null,
        targetResourceType: null,
        targetResourceId: null,
        outcomeDescription: null,
        sessionContext: null,
        details: { payload: {}, metadata: {} },
      });
    }
  });

  it('takes status, retention policy and event version from the payload', () => {
    const record = toAuditRecord(
      event({
        status: 'failure',
        retentionPolicy: 'hipaa-6y',
        eventVersion: '2.1',
        dataClassification: 'PHI',
      }),
      NOW,
    );
    expect(record).toMatchObject({
      status: 'failure',
      retentionPolicy: 'hipaa-6y',
      eventVersion: '2.1',
      dataClassification: 'PHI',
    });
  });

  it('changes the hash when any content field changes, not when latency or archiving does', () => {
    const record = toAuditRecord(event(FULL_PAYLOAD), NOW);
    const archived: AuditRecord = {
      ...record,
      processingLatencyMs: 99_999,
      archivedAt: '2027-01-01T00:00:00.000Z',
    };
    expect(auditHash(archived)).toBe(record.hash);
    expect(toAuditRecord(event(FULL_PAYLOAD), NOW + 5000).hash).toBe(record.hash);
    expect(auditHash({ ...record, principalId: 'u-2' })).not.toBe(record.hash);
    expect(
      auditHash({ ...record, details: { payload: { method: 'sso' }, metadata: { tenant: 't1' } } }),
    ).not.toBe(record.hash);
    expect(toAuditRecord(event(FULL_PAYLOAD, { eventId: 'evt-2' }), NOW).hash).not.toBe(record.hash);
  });

  it('names the field when an audit field has the wrong type or value', () => {
    expect(validationError(() => toAuditRecord(event({ dataClassification: 'SECRET' }), NOW)).field).toBe(
      'payload.dataClassification',
    );
    expect(validationError(() => toAuditRecord(event({ principalId: 42 }), NOW)).field).toBe(
      'payload.principalId',
    );
    expect(validationError(() => toAuditRecord(event({ sessionContext: 'x' }), NOW)).field).toBe(
      'payload.sessionContext',
    );
    expect(validationError(() => toAuditRecord(event({ status: '' }), NOW)).field).toBe('payload.status');
  });

  it('refuses a payload that is not a JSON object', () => {
    for (const payload of ['text', 42, null, [1, 2]] as JsonValue[]) {
      expect(validationError(() => toAuditRecord(event(payload), NOW)).field).toBe('payload');
    }
  });

  it('never reports a negative processing latency', () => {
    expect(toAuditRecord(event({}), Date.parse('2026-01-01T10:00:00.000Z')).processingLatencyMs).toBe(0);
  });
});
