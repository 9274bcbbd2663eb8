import type { ClaimRequest, ClaimResult, ClaimedDelivery, Lease } from '../backend.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import type { Sql } from './database.js';
import { DUE_STATES_SQL } from './migrations.js';
import { EVENT_COLUMNS, toEvent, type EventRow } from './rows.js';
import { prepared } from './statements.js';

interface ClaimRow extends EventRow {
  /** null on the one row answered when nothing was leased (it still carries `next_due_at`). */
  d_id: number | null;
  d_attempts: number;
  d_lease_expiries: number;
  d_token: string;
  d_recovered: boolean;
  d_previous_run_at: number;
  next_due_at: number | null;
}

/** The `ErrorInfo` recorded for an attempt whose worker stopped renewing its lease (`%s`: its number). */
const LEASE_EXPIRED_ERROR = `json_build_object('name', 'LeaseExpiredError', 'code', 'lease_expired',
  'message', format('the worker running attempt %s stopped renewing its lease (it died or stalled)', p.attempts),
  'stack', NULL)::text`;

/**
 * Leases the picked deliveries in one statement. `picked` (a CTE text over `deliveries`, locked
 * FOR UPDATE SKIP LOCKED) chooses them; this bumps their attempt, hands out the lease, and for
 * a row still `processing` (its worker died) first records the lost attempt as `lease_expired`.
 * With `nextDue`, also answers the destination's next due time after the claim (one row with no
 * delivery when nothing was leased), unless the claim filled its limit `$5` (the caller claims
 * again at once, so the lookup is skipped).
 * Parameters: $1 destination, $2 now, $3 lease end, $4 token prefix; the picker may add more.
 */
function leaseStatement(picker: string, nextDue: boolean): string {
  const claimed = `
      SELECT l.id AS d_id, l.attempts AS d_attempts, l.lease_expiries AS d_lease_expiries, l.lease_token AS d_token,
             l.recovered AS d_recovered, l.previous_run_at AS d_previous_run_at, ${EVENT_COLUMNS}
      FROM leased l JOIN events e ON e.seq = l.event_seq`;
  return `
    WITH picked AS (${picker}),
    leased AS (
      UPDATE deliveries d SET
        state = 'processing', attempts = d.attempts + 1, total_attempts = d.total_attempts + 1,
        lease_token = $4 || d.id, run_at = $3, started_at = $2, updated_at = $2,
        lease_expiries = d.lease_expiries + (p.state = 'processing')::int,
        last_error = CASE WHEN p.state = 'processing' THEN ${LEASE_EXPIRED_ERROR} ELSE d.last_error END,
        first_failed_at = CASE WHEN p.state = 'processing' THEN COALESCE(d.first_failed_at, $2)
                          ELSE d.first_failed_at END,
        last_failed_at = CASE WHEN p.state = 'processing' THEN $2 ELSE d.last_failed_at END
      FROM picked p WHERE d.id = p.id
      RETURNING d.id, d.event_seq, d.attempts, d.lease_expiries, d.lease_token, d.run_at,
                p.state = 'processing' AS recovered, p.run_at AS previous_run_at,
                p.total_attempts AS lost_number, p.started_at AS lost_started_at, d.last_error AS lost_error
    ),
    lost AS (
      INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, error)
      SELECT id, lost_number, COALESCE(lost_started_at, $2), NULL, 'lease_expired', lost_error
      FROM leased WHERE recovered
      ON CONFLICT (delivery_id, number) DO NOTHING
    )
    ${
      nextDue
        ? `SELECT c.*, n.next_due_at
    FROM (SELECT CASE WHEN (SELECT count(*) FROM leased) >= $5 THEN NULL ELSE LEAST(
            (SELECT MIN(run_at) FROM deliveries x
             WHERE x.destination = $1 AND x.state IN ${DUE_STATES_SQL} AND x.id NOT IN (SELECT id FROM picked)),
            (SELECT MIN(run_at) FROM leased)) END AS next_due_at) n
    LEFT JOIN (${claimed}) c ON true
    ORDER BY c.d_previous_run_at, c.d_id`
        : `SELECT c.*, NULL::bigint AS next_due_at FROM (${claimed}) c ORDER BY c.d_previous_run_at, c.d_id`
    }`;
}

const PICKED_COLUMNS = 'id, state, attempts, total_attempts, started_at, run_at';

const CLAIM_DUE = prepared(
  leaseStatement(
    `
  SELECT ${PICKED_COLUMNS} FROM deliveries
  WHERE destination = $1 AND state IN ${DUE_STATES_SQL} AND run_at <= $2
  ORDER BY run_at, id
  LIMIT $5
  FOR UPDATE SKIP LOCKED`,
    true,
  ),
);

/** The dispatch layer keeps its own schedule: no next due time. */
const CLAIM_IDS = prepared(
  leaseStatement(
    `
  SELECT ${PICKED_COLUMNS} FROM deliveries
  WHERE id = ANY($5::bigint[]) AND destination = $1 AND state IN ${DUE_STATES_SQL} AND run_at <= $2
  ORDER BY id
  FOR UPDATE SKIP LOCKED`,
    false,
  ),
);

function leasedRows(rows: readonly ClaimRow[]): (ClaimRow & { d_id: number })[] {
  return rows.filter((r): r is ClaimRow & { d_id: number } => r.d_id !== null);
}

function toClaimed(destination: string, row: ClaimRow & { d_id: number }): ClaimedDelivery {
  const lease: Lease = { deliveryId: String(row.d_id), token: row.d_token };
  return {
    lease,
    destination,
    attempt: row.d_attempts,
    recoveredLease: row.d_recovered,
    leaseExpiries: row.d_lease_expiries,
    event: toEvent(row),
  };
}

export interface LeaseTerms {
  readonly destination: string;
  readonly now: number;
  readonly leaseMs: number;
  /** Unique to this claim; the delivery id is appended to make each lease's token. */
  readonly tokenPrefix: string;
}

/**
 * Leases up to `limit` due deliveries, oldest due first, skipping rows other workers are
 * leasing at this moment. The limit function is called here, once the connection is ours.
 */
export async function claimDeliveries(
  sql: Sql,
  terms: LeaseTerms,
  limit: ClaimRequest['limit'],
): Promise<ClaimResult> {
  const n = typeof limit === 'function' ? limit() : limit;
  if (n <= 0) return { deliveries: [], nextDueAt: null };
  const rows = await sql.query<ClaimRow>(CLAIM_DUE, [
    terms.destination,
    terms.now,
    terms.now + terms.leaseMs,
    terms.tokenPrefix,
    n,
  ]);
  const leased = leasedRows(rows);
  // A full claim will be followed by another at once, which looks up the next due time then.
  const full = leased.length === n;
  return {
    deliveries: leased.map((r) => toClaimed(terms.destination, r)),
    nextDueAt: full ? null : (rows[0]?.next_due_at ?? null),
  };
}

/** Leases exactly these deliveries, each only if it is still due and not leased. */
export async function claimByIds(
  sql: Sql,
  terms: LeaseTerms,
  deliveryIds: readonly string[],
): Promise<ClaimedDelivery[]> {
  const ids = deliveryIds.map(Number).filter(Number.isSafeInteger);
  if (ids.length === 0) return [];
  const rows = await sql.query<ClaimRow>(CLAIM_IDS, [
    terms.destination,
    terms.now,
    terms.now + terms.leaseMs,
    terms.tokenPrefix,
    ids,
  ]);
  return leasedRows(rows).map((r) => toClaimed(terms.destination, r));
}

const NEXT_DUE = prepared(
  `SELECT MIN(run_at) AS next FROM deliveries WHERE destination = $1 AND state IN ${DUE_STATES_SQL}`,
);

/** Earliest due time among this destination's queued deliveries (blocked ones are never due). */
export async function nextDueAt(sql: Sql, destination: string): Promise<number | null> {
  const [row] = await sql.query<{ next: number | null }>(NEXT_DUE, [destination]);
  return row?.next ?? null;
}

const EXTEND_LEASES = prepared(
  `UPDATE deliveries d SET run_at = $1
   FROM unnest($2::bigint[], $3::text[]) AS l(id, token)
   WHERE d.id = l.id AND d.lease_token = l.token AND d.state = 'processing'
   RETURNING d.id`,
);

/** Moves held leases forward; returns the ids whose lease is no longer held by its token. */
export async function extendLeases(sql: Sql, leases: readonly Lease[], until: number): Promise<string[]> {
  const valid = leases.filter((l) => Number.isSafeInteger(Number(l.deliveryId)));
  if (valid.length === 0) return leases.map((l) => l.deliveryId);
  const rows = await sql.query<{ id: number }>(EXTEND_LEASES, [
    until,
    valid.map((l) => Number(l.deliveryId)),
    valid.map((l) => l.token),
  ]);
  const kept = new Set(rows.map((r) => String(r.id)));
  return leases.filter((l) => !kept.has(l.deliveryId)).map((l) => l.deliveryId);
}

const SCHEDULABLE_ALL = prepared(
  `SELECT id, destination, run_at FROM deliveries
   WHERE state IN ${DUE_STATES_SQL} AND run_at <= $1 AND id > $2 AND $3::text IS NULL
   ORDER BY id LIMIT $4`,
);
const SCHEDULABLE_ONE = prepared(
  `SELECT id, destination, run_at FROM deliveries
   WHERE state IN ${DUE_STATES_SQL} AND run_at <= $1 AND id > $2 AND destination = $3
   ORDER BY id LIMIT $4`,
);

/** Claimable deliveries by `dueBefore` (expired leases included, blocked ones never), by id. */
export async function schedulable(
  sql: Sql,
  request: { destination?: string; dueBefore: number; limit: number; afterId?: string },
): Promise<ScheduledDelivery[]> {
  if (request.limit <= 0) return [];
  const after = request.afterId === undefined ? 0 : Number(request.afterId);
  const rows = await sql.query<{ id: number; destination: string; run_at: number }>(
    request.destination === undefined ? SCHEDULABLE_ALL : SCHEDULABLE_ONE,
    [request.dueBefore, Number.isFinite(after) ? after : 0, request.destination ?? null, request.limit],
  );
  return rows.map((r) => ({ deliveryId: String(r.id), destination: r.destination, runAt: r.run_at }));
}
