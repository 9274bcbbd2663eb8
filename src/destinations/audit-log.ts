import { toAuditRecord, type AuditRecord } from '../audit/audit-record.js';
import { systemClock, type Clock } from '../clock.js';
import type { Handler } from '../core/destination.js';
import { PermanentError, ValidationError } from '../errors.js';

/** Where the audit-log destination writes; `SqliteAuditStore` is one. */
export interface AuditRecordSink {
  /** Writes the record unless its event already has one; `inserted: false` for a redelivery. */
  append(record: AuditRecord): { inserted: boolean } | Promise<{ inserted: boolean }>;
}

export interface AuditLogDestinationOptions {
  /** The audit log to append to. It must be open before events are delivered. */
  readonly store: AuditRecordSink;
  /** Measures `processingLatencyMs`. default the system clock */
  readonly clock?: Clock;
}

/**
 * The built-in `audit-log` destination: maps each event to an audit record (see
 * `toAuditRecord`) and appends it to the store, one record per event id.
 *
 * - A redelivery of an event already recorded succeeds without writing (at-least-once delivery
 *   becomes exactly one record).
 * - A payload that is not an object, or an audit field of the wrong type or value (say
 *   `dataClassification: 'SECRET'`), throws `PermanentError` naming the field, with the
 *   `ValidationError` as `cause`: retrying cannot fix it, so the event is dead-lettered at once.
 * - A busy, locked or full database fails the attempt with a retryable `AuditStoreError`.
 *
 * The handler resolves to `{ inserted }`.
 */
export function createAuditLogDestination(options: AuditLogDestinationOptions): Handler {
  const { store } = options;
  const clock = options.clock ?? systemClock;
  return async (event, ctx) => {
    let record: AuditRecord;
    try {
      record = toAuditRecord(event, clock.now());
    } catch (error) {
      if (error instanceof ValidationError) {
        throw new PermanentError(`audit-log: ${error.field}: ${error.issues[0]?.message ?? 'invalid'}`, {
          cause: error,
        });
      }
      throw error;
    }
    const result = await store.append(record);
    if (!result.inserted) {
      ctx.logger.debug({ eventId: event.eventId }, 'audit record already present; redelivery ignored');
    }
    return result;
  };
}
