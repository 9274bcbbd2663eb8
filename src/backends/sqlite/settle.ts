import { LeaseLostError } from '../../errors.js';
import type { AttemptReport, DeadLetterKeyPolicy, Lease } from '../backend.js';
import type { SqliteContext } from './context.js';
import type { DeliveryRow, EventRow } from './rows.js';
import type { Touch } from './write-queue.js';

/** Loads the leased delivery or throws `LeaseLostError` if this lease no longer holds it. */
function held(ctx: SqliteContext, lease: Lease): DeliveryRow {
  const row = ctx.sql
    .get(`SELECT * FROM deliveries WHERE id = ? AND lease_token = ? AND state = 'processing'`)
    .get(Number(lease.deliveryId), lease.token) as DeliveryRow | undefined;
  if (!row) {
    throw new LeaseLostError(`delivery ${lease.deliveryId} is no longer leased to this worker`);
  }
  return row;
}

function recordAttempt(
  ctx: SqliteContext,
  row: DeliveryRow,
  report: AttemptReport,
  outcome: 'failed' | 'probe_failed' = 'failed',
): void {
  ctx.sql
    .get(
      `INSERT OR REPLACE INTO attempts (delivery_id, number, started_at, duration_ms, outcome, error)
       VALUES (?, ?, ?, ?, ?, ?)`,
    )
    .run(
      row.id,
      row.total_attempts,
      report.startedAt,
      Math.round(report.durationMs),
      outcome,
      JSON.stringify(report.error ?? null),
    );
}

/** Lets the next waiting delivery of the key go (ordered destinations). */
export function promoteNext(
  ctx: SqliteContext,
  destination: string,
  orderKey: string | null,
  touch: Touch,
): void {
  if (orderKey === null) return;
  const now = ctx.clock.now();
  const result = ctx.sql
    .get(
      `UPDATE deliveries SET state = 'pending', run_at = ?, updated_at = ?
       WHERE id = (
         SELECT id FROM deliveries
         WHERE destination = ? AND order_key = ? AND order_key IS NOT NULL
           AND state IN ('pending', 'blocked', 'retrying', 'processing', 'dead') AND state = 'blocked'
         ORDER BY id LIMIT 1)`,
    )
    .run(now, now, destination, orderKey);
  if (result.changes > 0) touch(destination);
}

/**
 * One statement on the hot path. A success is kept on the delivery row itself (start time and
 * duration); only failed and lost attempts get rows of their own.
 */
export function completeDelivery(
  ctx: SqliteContext,
  lease: Lease,
  report: AttemptReport,
  touch: Touch,
): void {
  const now = ctx.clock.now();
  const row = ctx.sql
    .get(
      `UPDATE deliveries SET state = 'succeeded', lease_token = NULL, completed_at = ?, updated_at = ?,
         started_at = ?, duration_ms = ?
       WHERE id = ? AND lease_token = ? AND state = 'processing'
       RETURNING destination, order_key`,
    )
    .get(now, now, report.startedAt, Math.round(report.durationMs), Number(lease.deliveryId), lease.token) as
    Pick<DeliveryRow, 'destination' | 'order_key'> | undefined;
  if (!row) throw new LeaseLostError(`delivery ${lease.deliveryId} is no longer leased to this worker`);
  promoteNext(ctx, row.destination, row.order_key, touch);
}

export function retryDelivery(
  ctx: SqliteContext,
  lease: Lease,
  report: AttemptReport,
  runAt: number,
  touch: Touch,
  charge = true,
): void {
  const row = held(ctx, lease);
  const now = ctx.clock.now();
  recordAttempt(ctx, row, report, charge ? 'failed' : 'probe_failed');
  ctx.sql
    .get(
      `UPDATE deliveries SET state = 'retrying', lease_token = NULL, run_at = ?, updated_at = ?, last_error = ?,
         first_failed_at = COALESCE(first_failed_at, ?), last_failed_at = ?, attempts = attempts - ?
       WHERE id = ?`,
    )
    .run(runAt, now, JSON.stringify(report.error ?? null), report.startedAt, now, charge ? 0 : 1, row.id);
  // The destination's next due time moved: its runner must look again.
  touch(row.destination);
}

export function deadLetterDelivery(
  ctx: SqliteContext,
  lease: Lease,
  report: AttemptReport,
  policy: DeadLetterKeyPolicy,
  touch: Touch,
): void {
  const row = held(ctx, lease);
  const now = ctx.clock.now();
  recordAttempt(ctx, row, report);
  const error = report.error ?? { name: 'Error', code: null, message: 'dead-lettered', stack: null };
  ctx.sql
    .get(
      `UPDATE deliveries SET state = 'dead', lease_token = NULL, updated_at = ?, last_error = ?,
         first_failed_at = COALESCE(first_failed_at, ?), last_failed_at = ?
       WHERE id = ?`,
    )
    .run(now, JSON.stringify(error), report.startedAt, now, row.id);
  const event = ctx.sql.get(`SELECT type, key FROM events WHERE seq = ?`).get(row.event_seq) as Pick<
    EventRow,
    'type' | 'key'
  >;
  ctx.sql
    .get(
      `INSERT INTO dead_letters (delivery_id, destination, event_type, event_key, error_message, dead_at)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (delivery_id) DO UPDATE SET error_message = excluded.error_message, dead_at = excluded.dead_at`,
    )
    .run(row.id, row.destination, event.type, event.key, error.message, now);
  if (policy === 'skip') promoteNext(ctx, row.destination, row.order_key, touch);
}

/** Hands a delivery back untouched: the interrupted attempt does not count. */
export function releaseDelivery(ctx: SqliteContext, lease: Lease, touch: Touch): void {
  const row = held(ctx, lease);
  const now = ctx.clock.now();
  ctx.sql
    .get(
      `UPDATE deliveries SET state = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END,
         attempts = attempts - 1, total_attempts = total_attempts - 1, lease_token = NULL,
         run_at = ?, updated_at = ?
       WHERE id = ?`,
    )
    .run(now, now, row.id);
  touch(row.destination);
}
