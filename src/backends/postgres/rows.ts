/**
 * Rows as PostgreSQL returns them (bigint columns parsed to numbers). The columns mirror the
 * embedded store's, so both map rows to records the same way.
 */
export {
  deadLetterCursor,
  deadLetterPageLimit,
  EVENT_COLUMNS,
  historyOf,
  parseDeadLetterCursor,
  parseError,
  SELECT_DEAD_LETTERS,
  toAttempt,
  toDeadLetter,
  toDelivery,
  toDestinationRecord,
  toEvent,
  toQueueStats,
  type AttemptRow,
  type DeadLetterRow,
  type DeliveryRow,
  type DestinationRow,
  type EventRow,
  type QueueCountRow,
} from '../sqlite/rows.js';
