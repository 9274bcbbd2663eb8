import type { SteadfastEvent } from '../../event.js';
import type { JsonObject, JsonValue } from '../../json.js';
import type { AttemptOutcome, AttemptRecord, DeliveryRecord, DeliveryState, ErrorInfo } from '../backend.js';
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
