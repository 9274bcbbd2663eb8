import type {
  AttemptRecord,
  DeadLetter,
  DeadLetterFilter,
  DeadLetterPage,
  DeadLetterQuery,
  DeadLetterSelector,
  DeadLetterStats,
} from '../backend.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import type { Sql } from './database.js';
import { heldKeys, keyId, lockKeys, promoteNext, type KeyRef } from './key-order.js';
import type { RegistryCache } from './registry.js';
import {
  deadLetterCursor,
  deadLetterPageLimit,
  parseDeadLetterCursor,
  SELECT_DEAD_LETTERS,
  toAttempt,
  toDeadLetter,
  type AttemptRow,
  type DeadLetterRow,
} from './rows.js';

/** A WHERE clause over `dead_letters dl`, its parameters numbered from `$1`. */
function where(filter: DeadLetterFilter): { terms: string[]; params: (string | number)[] } {
  const terms: string[] = [];
  const params: (string | number)[] = [];
  const add = (sql: string, value: string | number) => {
    params.push(value);
    terms.push(`${sql} $${params.length}`);
  };
  if (filter.destination !== undefined) add('dl.destination =', filter.destination);
  if (filter.type !== undefined) add('dl.event_type =', filter.type);
  if (filter.key !== undefined) add('dl.event_key =', filter.key);
  if (filter.since !== undefined) add('dl.dead_at >=', filter.since);
  if (filter.until !== undefined) add('dl.dead_at <', filter.until);
  return { terms, params };
}

async function histories(sql: Sql, deliveryIds: readonly number[]): Promise<Map<number, AttemptRecord[]>> {
  const byId = new Map<number, AttemptRecord[]>(deliveryIds.map((id) => [id, []]));
  if (deliveryIds.length === 0) return byId;
  const rows = await sql.query<AttemptRow>(
    `SELECT * FROM attempts WHERE delivery_id = ANY($1::bigint[]) ORDER BY delivery_id, number`,
    [deliveryIds],
  );
  for (const row of rows) byId.get(row.delivery_id)?.push(toAttempt(row));
  return byId;
}

async function toDeadLetters(sql: Sql, rows: readonly DeadLetterRow[]): Promise<DeadLetter[]> {
  const history = await histories(
    sql,
    rows.map((r) => r.dl_delivery_id),
  );
  return rows.map((row) => toDeadLetter(row, history.get(row.dl_delivery_id) ?? []));
}

/** Newest first. The cursor is opaque to callers. */
export async function listDeadLetters(sql: Sql, query: DeadLetterQuery): Promise<DeadLetterPage> {
  const limit = deadLetterPageLimit(query);
  const { terms, params } = where(query);
  const before = parseDeadLetterCursor(query.cursor);
  if (before !== null) {
    params.push(before);
    terms.push(`dl.seq < $${params.length}`);
  }
  params.push(limit + 1);
  const clause = terms.length > 0 ? `WHERE ${terms.join(' AND ')}` : '';
  const rows = await sql.query<DeadLetterRow>(
    `${SELECT_DEAD_LETTERS} ${clause} ORDER BY dl.seq DESC LIMIT $${params.length}`,
    params,
  );
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: await toDeadLetters(sql, page),
    nextCursor: rows.length > limit && last ? deadLetterCursor(last.dl_seq) : null,
  };
}

export async function getDeadLetter(sql: Sql, id: string): Promise<DeadLetter | null> {
  const deliveryId = Number(id);
  if (!Number.isSafeInteger(deliveryId)) return null;
  const rows = await sql.query<DeadLetterRow>(`${SELECT_DEAD_LETTERS} WHERE dl.delivery_id = $1`, [
    deliveryId,
  ]);
  const [letter] = await toDeadLetters(sql, rows);
  return letter ?? null;
}

interface SelectedRow {
  delivery_id: number;
  destination: string;
  order_key: string | null;
}

/** The selected dead letters, oldest first, each removed from the dead-letter table. */
async function take(sql: Sql, selector: DeadLetterSelector): Promise<SelectedRow[]> {
  let rows: SelectedRow[];
  if (Array.isArray(selector)) {
    const ids = (selector as readonly string[]).map(Number).filter(Number.isSafeInteger);
    rows = await sql.query<SelectedRow>(
      `DELETE FROM dead_letters dl USING deliveries d
       WHERE d.id = dl.delivery_id AND dl.delivery_id = ANY($1::bigint[])
       RETURNING dl.seq, dl.delivery_id, dl.destination, d.order_key`,
      [ids],
    );
  } else {
    const { terms, params } = where(selector as DeadLetterFilter);
    rows = await sql.query<SelectedRow>(
      `DELETE FROM dead_letters dl USING deliveries d
       WHERE d.id = dl.delivery_id ${terms.map((t) => `AND ${t}`).join(' ')}
       RETURNING dl.seq, dl.delivery_id, dl.destination, d.order_key`,
      params,
    );
  }
  return (rows as (SelectedRow & { seq: number })[]).sort((a, b) => a.seq - b.seq);
}

function keysOf(rows: readonly SelectedRow[]): KeyRef[] {
  return rows
    .filter((r): r is SelectedRow & { order_key: string } => r.order_key !== null)
    .map((r) => ({ destination: r.destination, orderKey: r.order_key }));
}

/**
 * Back to the queue with a fresh attempt budget; behind the current head if its key is busy.
 * Run in a transaction. Answers the ids replayed and the deliveries claimable at once.
 */
export async function replayDeadLetters(
  sql: Sql,
  schema: string,
  registry: RegistryCache,
  selector: DeadLetterSelector,
  now: number,
): Promise<{ ids: string[]; scheduled: ScheduledDelivery[] }> {
  const rows = await take(sql, selector);
  if (rows.length === 0) return { ids: [], scheduled: [] };
  const keys = keysOf(rows);
  await lockKeys(sql, schema, keys);
  const keyed = [];
  for (const key of keys) {
    const destination = await registry.get(sql, key.destination);
    if (destination) keyed.push({ ...key, blockOnDead: destination.onDeadLetter === 'block' });
  }
  const held = await heldKeys(sql, keyed, {
    countWaiting: false,
    exceptIds: rows.map((r) => r.delivery_id),
  });
  // Two replayed deliveries of one key: the older goes first, the other waits behind it.
  const states = rows.map((row) => {
    if (row.order_key === null) return 'pending';
    const id = keyId(row.destination, row.order_key);
    if (held.has(id)) return 'blocked';
    held.add(id);
    return 'pending';
  });
  const updated = await sql.query<{ id: number; destination: string; state: string }>(
    `UPDATE deliveries d SET state = r.state, attempts = 0, replays = d.replays + 1, run_at = $3, updated_at = $3,
       completed_at = NULL
     FROM unnest($1::bigint[], $2::text[]) AS r(id, state)
     WHERE d.id = r.id AND d.state = 'dead'
     RETURNING d.id, d.destination, d.state`,
    [rows.map((r) => r.delivery_id), states, now],
  );
  const scheduled = updated
    .filter((r) => r.state === 'pending')
    .sort((a, b) => a.id - b.id)
    .map((r) => ({ deliveryId: String(r.id), destination: r.destination, runAt: now }));
  return { ids: rows.map((r) => String(r.delivery_id)), scheduled };
}

/** Removes dead letters for good: their deliveries become `discarded`. Run in a transaction. */
export async function deleteDeadLetters(
  sql: Sql,
  schema: string,
  selector: DeadLetterSelector,
  now: number,
): Promise<{ ids: string[]; scheduled: ScheduledDelivery[] }> {
  const rows = await take(sql, selector);
  if (rows.length === 0) return { ids: [], scheduled: [] };
  await lockKeys(sql, schema, keysOf(rows));
  await sql.query(
    `UPDATE deliveries SET state = 'discarded', completed_at = $2, updated_at = $2
     WHERE id = ANY($1::bigint[]) AND state = 'dead'`,
    [rows.map((r) => r.delivery_id), now],
  );
  const scheduled: ScheduledDelivery[] = [];
  for (const key of keysOf(rows)) {
    const next = await promoteNext(sql, schema, key, now);
    if (next) scheduled.push(next);
  }
  return { ids: rows.map((r) => String(r.delivery_id)), scheduled };
}

export async function deadLetterStats(sql: Sql, now: number): Promise<DeadLetterStats> {
  const [totals] = await sql.query<{ count: number; oldest: number | null }>(
    `SELECT COUNT(*) AS count, MIN(dead_at) AS oldest FROM dead_letters`,
  );
  const groups = await sql.query<{ kind: 'destination' | 'type'; name: string; count: number }>(
    `SELECT 'destination' AS kind, destination AS name, COUNT(*) AS count FROM dead_letters GROUP BY destination
     UNION ALL
     SELECT 'type' AS kind, event_type AS name, COUNT(*) AS count FROM dead_letters GROUP BY event_type`,
  );
  const topErrors = await sql.query<{ message: string; count: number }>(
    `SELECT error_message AS message, COUNT(*) AS count FROM dead_letters
     GROUP BY error_message ORDER BY count DESC, message LIMIT 10`,
  );
  const oldest = totals?.oldest ?? null;
  const pick = (kind: string) =>
    Object.fromEntries(groups.filter((g) => g.kind === kind).map((g) => [g.name, g.count]));
  return {
    count: totals?.count ?? 0,
    oldestDeadAt: oldest,
    oldestAgeMs: oldest === null ? null : Math.max(0, now - oldest),
    byDestination: pick('destination'),
    byType: pick('type'),
    topErrors,
  };
}
