import type { ClaimRequest, ClaimResult, ClaimedDelivery, ErrorInfo, Lease } from '../backend.js';
import { DUE_STATES_SQL, type SqliteContext } from './context.js';
import { EVENT_COLUMNS, toEvent, type EventRow } from './rows.js';

interface ClaimRow extends EventRow {
  d_id: number;
  d_state: string;
  d_attempts: number;
  d_total_attempts: number;
  d_lease_expiries: number;
  d_started_at: number | null;
}

export function leaseExpiredError(previousAttempt: number): ErrorInfo {
  return {
    name: 'LeaseExpiredError',
    code: 'lease_expired',
    message: `the worker running attempt ${previousAttempt} stopped renewing its lease (it died or stalled)`,
    stack: null,
  };
}

/** Earliest due time among this destination's queued deliveries (blocked ones are never due). */
export function nextDueAt(ctx: SqliteContext, destination: string): number | null {
  const row = ctx.sql
    .get(`SELECT MIN(run_at) AS next FROM deliveries WHERE destination = ? AND state IN ${DUE_STATES_SQL}`)
    .get(destination) as { next: number | null };
  return row.next;
}

/**
 * Leases due deliveries. A row still `processing` whose lease ran out belonged to a worker that
 * died: its lost attempt is recorded as `lease_expired` before the new lease is handed out.
 */
export function claimDeliveries(
  ctx: SqliteContext,
  request: ClaimRequest,
  nextToken: () => string,
): ClaimResult {
  const now = ctx.clock.now();
  const limit = typeof request.limit === 'function' ? request.limit() : request.limit;
  if (limit <= 0) return { deliveries: [], nextDueAt: null };
  const rows = ctx.sql
    .get(
      `SELECT d.id AS d_id, d.state AS d_state, d.attempts AS d_attempts, d.total_attempts AS d_total_attempts,
              d.lease_expiries AS d_lease_expiries, d.started_at AS d_started_at, ${EVENT_COLUMNS}
       FROM deliveries d JOIN events e ON e.seq = d.event_seq
       WHERE d.destination = ? AND d.state IN ${DUE_STATES_SQL} AND d.run_at <= ?
       ORDER BY d.run_at, d.id
       LIMIT ?`,
    )
    .all(request.destination, now, limit) as ClaimRow[];

  const lease = ctx.sql.get(
    `UPDATE deliveries SET state = 'processing', attempts = attempts + 1, total_attempts = total_attempts + 1,
       lease_token = ?, run_at = ?, started_at = ?, updated_at = ?
     WHERE id = ?`,
  );
  const expire = ctx.sql.get(
    `UPDATE deliveries SET lease_expiries = lease_expiries + 1, last_error = ?,
       first_failed_at = COALESCE(first_failed_at, ?), last_failed_at = ?
     WHERE id = ?`,
  );
  const recordLost = ctx.sql.get(
    `INSERT OR IGNORE INTO attempts (delivery_id, number, started_at, duration_ms, outcome, error)
     VALUES (?, ?, ?, NULL, 'lease_expired', ?)`,
  );

  const deliveries: ClaimedDelivery[] = rows.map((row) => {
    const recoveredLease = row.d_state === 'processing';
    if (recoveredLease) {
      const error = JSON.stringify(leaseExpiredError(row.d_attempts));
      recordLost.run(row.d_id, row.d_total_attempts, row.d_started_at ?? now, error);
      expire.run(error, now, now, row.d_id);
    }
    const token = nextToken();
    lease.run(token, now + request.leaseMs, now, now, row.d_id);
    const held: Lease = { deliveryId: String(row.d_id), token };
    return {
      lease: held,
      destination: request.destination,
      attempt: row.d_attempts + 1,
      recoveredLease,
      leaseExpiries: row.d_lease_expiries + (recoveredLease ? 1 : 0),
      event: toEvent(row),
    };
  });
  // A full claim will be followed by another at once, which looks up the next due time then.
  const full = deliveries.length === limit;
  return { deliveries, nextDueAt: full ? null : nextDueAt(ctx, request.destination) };
}

/** Moves held leases forward; returns the ids whose lease is no longer held by `token`. */
export function extendLeases(ctx: SqliteContext, leases: readonly Lease[], leaseMs: number): string[] {
  const until = ctx.clock.now() + leaseMs;
  const extend = ctx.sql.get(
    `UPDATE deliveries SET run_at = ? WHERE id = ? AND lease_token = ? AND state = 'processing'`,
  );
  return leases
    .filter((l) => extend.run(until, Number(l.deliveryId), l.token).changes === 0)
    .map((l) => l.deliveryId);
}
