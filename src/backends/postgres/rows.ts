/**
 * Rows as PostgreSQL returns them (bigint columns parsed to numbers). The columns mirror the
 * embedded store's, so both map rows to records the same way.
 */
export {
  historyOf,
  parseError,
  toAttempt,
  toDelivery,
  toEvent,
  type AttemptRow,
  type DeliveryRow,
  type EventRow,
} from '../sqlite/rows.js';

export const EVENT_COLUMNS =
  'e.seq, e.event_id, e.type, e.key, e.payload, e.occurred_at, e.correlation_id, e.source, e.metadata, e.received_at';
