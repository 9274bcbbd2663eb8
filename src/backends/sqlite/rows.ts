import type { SteadfastEvent } from '../../event.js';
import type { JsonObject, JsonValue } from '../../json.js';
import { InvalidOptionError } from '../../errors.js';
import type {
  AttemptOutcome,
  AttemptRecord,
  DeadLetter,
  DeadLetterQuery,
  DeliveryRecord,
  DeliveryState,
  DestinationQueueStats,
  DestinationRecord,
  ErrorInfo,
  QueueStats,
} from '../backend.js';
import type { StoredState } from './context.js';

export interface EventRow {
  seq: number;
  event_id: string;
  type: string;
  key: string | null;
  payload: string;
  occurred_at: string;
  correlation_id: string;
  source: string | null;
  metadata: string;
  received_at: number;
}

export interface DeliveryRow {
  id: number;
  event_seq: number;
  destination: string;
  order_key: string | null;
  state: StoredState;
  attempts: number;
  total_attempts: number;
  run_at: number;
  lease_token: string | null;
  started_at: number | null;
  duration_ms: number | null;
  lease_expiries: number;
  replays: number;
  last_error: string | null;
  first_failed_at: number | null;
  last_failed_at: number | null;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
}

export interface AttemptRow {
  delivery_id: number;
  number: number;
  started_at: number;
  duration_ms: number | null;
  outcome: AttemptOutcome;
  error: string | null;
}

export const EVENT_COLUMNS =
  'e.seq, e.event_id, e.type, e.key, e.payload, e.occurred_at, e.correlation_id, e.source, e.metadata, e.received_at';

export function toEvent(row: EventRow): SteadfastEvent {
  return {
    eventId: row.event_id,
    type: row.type,
    payload: JSON.parse(row.payload) as JsonValue,
    key: row.key,
    occurredAt: row.occurred_at,
    receivedAt: new Date(row.received_at).toISOString(),
    correlationId: row.correlation_id,
    source: row.source,
    metadata: JSON.parse(row.metadata) as JsonObject,
  };
}

export function parseError(text: string | null): ErrorInfo | null {
  return text === null ? null : (JSON.parse(text) as ErrorInfo);
}

export function toAttempt(row: AttemptRow): AttemptRecord {
  return {
    number: row.number,
    startedAt: row.started_at,
    durationMs: row.duration_ms,
    outcome: row.outcome,
    error: parseError(row.error),
  };
}

/** Every attempt of a delivery: the recorded failures, plus its success (kept on the row). */
export function historyOf(row: DeliveryRow, attempts: readonly AttemptRow[]): AttemptRecord[] {
  const history = attempts.map(toAttempt);
  if (row.state === 'succeeded' && row.started_at !== null) {
    history.push({
      number: row.total_attempts,
      startedAt: row.started_at,
      durationMs: row.duration_ms,
      outcome: 'succeeded',
      error: null,
    });
  }
  return history;
}

export function publicState(row: DeliveryRow): DeliveryState {
  if (row.state === 'blocked') return 'pending';
  if (row.state === 'pending' && row.attempts > 0) return 'retrying';
  return row.state;
}

export function toDelivery(row: DeliveryRow, history: readonly AttemptRecord[]): DeliveryRecord {
  const open = row.state === 'pending' || row.state === 'retrying' || row.state === 'processing';
  return {
    deliveryId: String(row.id),
    destination: row.destination,
    state: publicState(row),
    attempts: row.attempts,
    waitingForKey: row.state === 'blocked',
    nextAttemptAt: open ? row.run_at : null,
    lastError: parseError(row.last_error),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    completedAt: row.completed_at,
    replays: row.replays,
    history,
  };
}

/** The dead-letter columns both SQL backends select, beside the event's. */
export interface DeadLetterRow extends EventRow {
  dl_seq: number;
  dl_delivery_id: number;
  dl_destination: string;
  dl_dead_at: number;
  d_attempts: number;
  d_last_error: string | null;
  d_first_failed_at: number | null;
  d_last_failed_at: number | null;
}

/** Dead letters with their delivery and event; add a WHERE clause. */
export const SELECT_DEAD_LETTERS = `
  SELECT dl.seq AS dl_seq, dl.delivery_id AS dl_delivery_id, dl.destination AS dl_destination,
         dl.dead_at AS dl_dead_at, d.attempts AS d_attempts, d.last_error AS d_last_error,
         d.first_failed_at AS d_first_failed_at, d.last_failed_at AS d_last_failed_at, ${EVENT_COLUMNS}
  FROM dead_letters dl
  JOIN deliveries d ON d.id = dl.delivery_id
  JOIN events e ON e.seq = d.event_seq`;

/** Most dead letters on one page. */
export const MAX_DEAD_LETTER_PAGE = 1000;

/** The page size a dead-letter query asks for (default 50), checked. */
export function deadLetterPageLimit(query: DeadLetterQuery): number {
  const limit = query.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_DEAD_LETTER_PAGE) {
    throw new InvalidOptionError(`limit must be an integer from 1 to ${MAX_DEAD_LETTER_PAGE}, got ${limit}`);
  }
  return limit;
}

/** The opaque cursor after the dead letter with this sequence number. */
export function deadLetterCursor(seq: number): string {
  return Buffer.from(String(seq)).toString('base64url');
}

/** The sequence number a cursor stands for (null without one). */
export function parseDeadLetterCursor(cursor: string | undefined): number | null {
  if (cursor === undefined) return null;
  const seq = Number(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!Number.isSafeInteger(seq) || seq < 0) throw new InvalidOptionError(`invalid cursor: ${cursor}`);
  return seq;
}

export function toDeadLetter(row: DeadLetterRow, history: readonly AttemptRecord[]): DeadLetter {
  return {
    id: String(row.dl_delivery_id),
    destination: row.dl_destination,
    event: toEvent(row),
    attempts: row.d_attempts,
    error: parseError(row.d_last_error) ?? {
      name: 'Error',
      code: null,
      message: 'unknown error',
      stack: null,
    },
    firstFailedAt: row.d_first_failed_at ?? row.dl_dead_at,
    lastFailedAt: row.d_last_failed_at ?? row.dl_dead_at,
    deadAt: row.dl_dead_at,
    history,
  };
}

export interface DestinationRow {
  name: string;
  types: string;
  /** A boolean in PostgreSQL, 0 or 1 in SQLite. */
  ordered: boolean | number;
  on_dead_letter: 'skip' | 'block';
  created_at: number;
  updated_at: number;
  retired_at: number | null;
}

export function toDestinationRecord(row: DestinationRow): DestinationRecord {
  return {
    name: row.name,
    types: JSON.parse(row.types) as string[] | '*',
    ordered: row.ordered === true || row.ordered === 1,
    onDeadLetter: row.on_dead_letter,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    retiredAt: row.retired_at,
  };
}

/** Unfinished (or dead) deliveries of one destination in one state, counted. */
export interface QueueCountRow {
  destination: string;
  state: 'pending' | 'retrying' | 'processing' | 'dead';
  count: number;
  oldest: number | null;
}

type MutableStats = { -readonly [K in keyof DestinationQueueStats]: DestinationQueueStats[K] };

/** Sums the counts per destination; the depth leaves dead letters out. */
export function toQueueStats(rows: readonly QueueCountRow[], now: number): QueueStats {
  const byDestination: Record<string, MutableStats> = {};
  let depth = 0;
  for (const row of rows) {
    const stats = (byDestination[row.destination] ??= {
      pending: 0,
      retrying: 0,
      processing: 0,
      dead: 0,
      oldestPendingAgeMs: null,
    });
    stats[row.state] += row.count;
    if (row.state !== 'dead') depth += row.count;
    if (row.oldest !== null) {
      stats.oldestPendingAgeMs = Math.max(stats.oldestPendingAgeMs ?? 0, Math.max(0, now - row.oldest));
    }
  }
  return { depth, byDestination };
}
