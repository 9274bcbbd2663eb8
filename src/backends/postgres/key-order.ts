import type { ScheduledDelivery } from '../dispatch-source.js';
import type { Sql } from './database.js';
import { prepared } from './statements.js';

/** One key of one ordered destination. */
export interface KeyRef {
  readonly destination: string;
  readonly orderKey: string;
}

/** Namespaces key locks by schema (advisory locks are shared by the whole database). */
export function keyLockPrefix(schema: string): string {
  return `steadfast:key:${schema}:`;
}

const LOCK_KEYS = prepared(
  `SELECT count(pg_advisory_xact_lock(k)) FROM (
       SELECT DISTINCT hashtextextended($1 || d || chr(31) || o, 0) AS k
       FROM unnest($2::text[], $3::text[]) AS t(d, o)
       ORDER BY k) AS sorted`,
);

const HELD_KEYS = prepared(
  `SELECT DISTINCT d.destination, d.order_key
     FROM unnest($1::text[], $2::text[], $3::boolean[]) AS k(destination, order_key, block_on_dead)
     JOIN deliveries d ON d.destination = k.destination AND d.order_key = k.order_key
     WHERE d.order_key IS NOT NULL AND d.state IN ('pending', 'blocked', 'retrying', 'processing', 'dead')
       AND (d.state <> 'dead' OR k.block_on_dead) AND (d.state <> 'blocked' OR $4)
       AND d.id <> ALL($5::bigint[])`,
);

const PROMOTE_NEXT = prepared(
  `UPDATE deliveries SET state = 'pending', run_at = $1, updated_at = $1
     WHERE id = (
       SELECT id FROM deliveries
       WHERE destination = $2 AND order_key = $3
         AND state IN ('pending', 'blocked', 'retrying', 'processing', 'dead') AND state = 'blocked'
       ORDER BY id LIMIT 1)
     RETURNING id`,
);

/**
 * Serialises every change to the line of these keys (publish, settling a head, replay, delete)
 * until the transaction ends. Locks are taken in one global order, so two transactions locking
 * several keys cannot deadlock. The statement after this one sees what the previous holder
 * committed.
 */
export async function lockKeys(sql: Sql, schema: string, keys: readonly KeyRef[]): Promise<void> {
  if (keys.length === 0) return;
  await sql.query(LOCK_KEYS, [
    keyLockPrefix(schema),
    keys.map((k) => k.destination),
    keys.map((k) => k.orderKey),
  ]);
}

/**
 * Which of these keys have a delivery in line already, so a new one must wait its turn. Waiting
 * (`blocked`) deliveries count for a new event (they are ahead of it) but not for a replayed one,
 * which is older than them. Under the `block` policy a dead letter holds its key.
 */
export async function heldKeys(
  sql: Sql,
  keys: readonly (KeyRef & { readonly blockOnDead: boolean })[],
  options: { readonly countWaiting: boolean; readonly exceptIds?: readonly number[] },
): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const rows = await sql.query<{ destination: string; order_key: string }>(HELD_KEYS, [
    keys.map((k) => k.destination),
    keys.map((k) => k.orderKey),
    keys.map((k) => k.blockOnDead),
    options.countWaiting,
    options.exceptIds ?? [],
  ]);
  return new Set(rows.map((r) => keyId(r.destination, r.order_key)));
}

export function keyId(destination: string, orderKey: string): string {
  return JSON.stringify([destination, orderKey]);
}

/**
 * Lets the next waiting delivery of the key go (ordered destinations). The caller holds the
 * key's lock, so a delivery published meanwhile is either seen here or saw the key free.
 */
export async function promoteNext(
  sql: Sql,
  schema: string,
  key: KeyRef,
  now: number,
): Promise<ScheduledDelivery | null> {
  await lockKeys(sql, schema, [key]);
  const [row] = await sql.query<{ id: number }>(PROMOTE_NEXT, [now, key.destination, key.orderKey]);
  return row ? { deliveryId: String(row.id), destination: key.destination, runAt: now } : null;
}
