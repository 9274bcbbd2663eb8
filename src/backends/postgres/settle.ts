import { LeaseLostError } from '../../errors.js';
import type { AttemptReport, DeadLetterKeyPolicy, ErrorInfo, Lease } from '../backend.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import type { Sql } from './database.js';
import { promoteNext } from './key-order.js';
import { prepared } from './statements.js';

function lost(lease: Lease): LeaseLostError {
  return new LeaseLostError(`delivery ${lease.deliveryId} is no longer leased to this worker`);
}

function idOf(lease: Lease): number {
  const id = Number(lease.deliveryId);
  if (!Number.isSafeInteger(id)) throw lost(lease);
  return id;
}

/** Settling a lease answers the deliveries it made claimable. */
export type Settled = ScheduledDelivery[];

const NONE: Settled = [];

const RETRY = prepared(
  `WITH d AS (
       UPDATE deliveries SET state = 'retrying', lease_token = NULL, run_at = $3, updated_at = $4, last_error = $5,
         first_failed_at = COALESCE(first_failed_at, $6), last_failed_at = $4, attempts = attempts - $7
       WHERE id = $1 AND lease_token = $2 AND state = 'processing'
       RETURNING id, destination, total_attempts
     ), a AS (
       INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, error)
       SELECT id, total_attempts, $6, $8, $9, $5 FROM d
       ON CONFLICT (delivery_id, number) DO UPDATE SET started_at = excluded.started_at,
         duration_ms = excluded.duration_ms, outcome = excluded.outcome, error = excluded.error
     )
     SELECT id, destination FROM d`,
);

const DEAD_LETTER = prepared(
  `WITH d AS (
       UPDATE deliveries SET state = 'dead', lease_token = NULL, updated_at = $3, last_error = $4,
         first_failed_at = COALESCE(first_failed_at, $5), last_failed_at = $3
       WHERE id = $1 AND lease_token = $2 AND state = 'processing'
       RETURNING id, destination, order_key, total_attempts, event_seq
     ), a AS (
       INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, error)
       SELECT id, total_attempts, $5, $6, 'failed', $7 FROM d
       ON CONFLICT (delivery_id, number) DO UPDATE SET started_at = excluded.started_at,
         duration_ms = excluded.duration_ms, outcome = excluded.outcome, error = excluded.error
     ), dl AS (
       INSERT INTO dead_letters (delivery_id, destination, event_type, event_key, error_message, dead_at)
       SELECT d.id, d.destination, e.type, e.key, $8, $3 FROM d JOIN events e ON e.seq = d.event_seq
       ON CONFLICT (delivery_id) DO UPDATE SET error_message = excluded.error_message, dead_at = excluded.dead_at
     )
     SELECT destination, order_key FROM d`,
);

const RELEASE = prepared(
  `UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,
       attempts = attempts - 1, total_attempts = total_attempts - 1, lease_token = NULL,
       run_at = $3, updated_at = $3
     WHERE id = $1 AND lease_token = $2 AND state = 'processing'
     RETURNING id, destination`,
);

/**
 * Records the failed attempt and schedules the next at `runAt`, in one statement. Uncharged (a
 * failed circuit-breaker probe), the attempt is recorded as `probe_failed` and given back.
 */
export async function retryDelivery(
  sql: Sql,
  lease: Lease,
  report: AttemptReport,
  runAt: number,
  now: number,
  charge: boolean,
): Promise<Settled> {
  const error = JSON.stringify(report.error ?? null);
  const [row] = await sql.query<{ id: number; destination: string }>(RETRY, [
    idOf(lease),
    lease.token,
    runAt,
    now,
    error,
    report.startedAt,
    charge ? 0 : 1,
    Math.round(report.durationMs),
    charge ? 'failed' : 'probe_failed',
  ]);
  if (!row) throw lost(lease);
  return [{ deliveryId: String(row.id), destination: row.destination, runAt }];
}

/**
 * Records the final failed attempt and moves the delivery to the dead-letter queue; under the
 * `skip` policy the next delivery of its key goes. Run in a transaction.
 */
export async function deadLetterDelivery(
  sql: Sql,
  schema: string,
  lease: Lease,
  report: AttemptReport,
  policy: DeadLetterKeyPolicy,
  now: number,
): Promise<Settled> {
  const error: ErrorInfo = report.error ?? {
    name: 'Error',
    code: null,
    message: 'dead-lettered',
    stack: null,
  };
  const errorJson = JSON.stringify(error);
  const [row] = await sql.query<{ destination: string; order_key: string | null }>(DEAD_LETTER, [
    idOf(lease),
    lease.token,
    now,
    errorJson,
    report.startedAt,
    Math.round(report.durationMs),
    JSON.stringify(report.error ?? null),
    error.message,
  ]);
  if (!row) throw lost(lease);
  if (policy !== 'skip' || row.order_key === null) return NONE;
  const next = await promoteNext(sql, schema, { destination: row.destination, orderKey: row.order_key }, now);
  return next ? [next] : NONE;
}

/** Hands a delivery back untouched: the interrupted attempt does not count. One statement. */
export async function releaseDelivery(sql: Sql, lease: Lease, now: number): Promise<Settled> {
  const [row] = await sql.query<{ id: number; destination: string }>(RELEASE, [
    idOf(lease),
    lease.token,
    now,
  ]);
  if (!row) throw lost(lease);
  return [{ deliveryId: String(row.id), destination: row.destination, runAt: now }];
}
