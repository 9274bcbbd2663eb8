import type {
  DeadLetter,
  DeadLetterFilter,
  DeadLetterPage,
  DeadLetterQuery,
  DeadLetterSelector,
  DeadLetterStats,
} from '../backend.js';
import type { SqliteContext } from './context.js';
import { keyIsHeld } from './publish.js';
import type { RegistryCache } from './registry.js';
import { promoteNext } from './settle.js';
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
import type { Touch } from './write-queue.js';

function where(filter: DeadLetterFilter): { clause: string; params: (string | number)[] } {
  const terms: string[] = [];
  const params: (string | number)[] = [];
  if (filter.destination !== undefined) {
    terms.push('dl.destination = ?');
    params.push(filter.destination);
  }
  if (filter.type !== undefined) {
    terms.push('dl.event_type = ?');
    params.push(filter.type);
  }
  if (filter.key !== undefined) {
    terms.push('dl.event_key = ?');
    params.push(filter.key);
  }
  if (filter.since !== undefined) {
    terms.push('dl.dead_at >= ?');
    params.push(filter.since);
  }
  if (filter.until !== undefined) {
    terms.push('dl.dead_at < ?');
    params.push(filter.until);
  }
  return { clause: terms.length > 0 ? `WHERE ${terms.join(' AND ')}` : '', params };
}

function history(ctx: SqliteContext, deliveryId: number) {
  const rows = ctx.sql
    .get(`SELECT * FROM attempts WHERE delivery_id = ? ORDER BY number`)
    .all(deliveryId) as AttemptRow[];
  return rows.map(toAttempt);
}

function toDeadLetterWithHistory(ctx: SqliteContext, row: DeadLetterRow): DeadLetter {
  return toDeadLetter(row, history(ctx, row.dl_delivery_id));
}

/** Newest first. The cursor is opaque to callers. */
export function listDeadLetters(ctx: SqliteContext, query: DeadLetterQuery): DeadLetterPage {
  const limit = deadLetterPageLimit(query);
  const { clause, params } = where(query);
  const before = parseDeadLetterCursor(query.cursor);
  const cursorClause = before === null ? '' : `${clause ? ' AND' : 'WHERE'} dl.seq < ?`;
  const rows = ctx.db
    .prepare(`${SELECT_DEAD_LETTERS} ${clause}${cursorClause} ORDER BY dl.seq DESC LIMIT ?`)
    .all(...params, ...(before === null ? [] : [before]), limit + 1) as DeadLetterRow[];
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map((row) => toDeadLetterWithHistory(ctx, row)),
    nextCursor: rows.length > limit && last ? deadLetterCursor(last.dl_seq) : null,
  };
}

export function getDeadLetter(ctx: SqliteContext, id: string): DeadLetter | null {
  const deliveryId = Number(id);
  if (!Number.isSafeInteger(deliveryId)) return null;
  const row = ctx.sql.get(`${SELECT_DEAD_LETTERS} WHERE dl.delivery_id = ?`).get(deliveryId) as
    DeadLetterRow | undefined;
  return row ? toDeadLetterWithHistory(ctx, row) : null;
}

interface SelectedRow {
  delivery_id: number;
  destination: string;
  order_key: string | null;
}

function select(ctx: SqliteContext, selector: DeadLetterSelector): SelectedRow[] {
  const base = `SELECT dl.delivery_id, dl.destination, d.order_key FROM dead_letters dl
                JOIN deliveries d ON d.id = dl.delivery_id`;
  if (Array.isArray(selector)) {
    const ids = (selector as readonly string[]).map(Number).filter(Number.isSafeInteger);
    const one = ctx.sql.get(`${base} WHERE dl.delivery_id = ?`);
    return ids.map((id) => one.get(id) as SelectedRow | undefined).filter((r) => r !== undefined);
  }
  const { clause, params } = where(selector as DeadLetterFilter);
  return ctx.db.prepare(`${base} ${clause} ORDER BY dl.seq`).all(...params) as SelectedRow[];
}

/** Back to the queue with a fresh attempt budget; behind the current head if its key is busy. */
export function replayDeadLetters(
  ctx: SqliteContext,
  registry: RegistryCache,
  selector: DeadLetterSelector,
  touch: Touch,
): string[] {
  const now = ctx.clock.now();
  const remove = ctx.sql.get(`DELETE FROM dead_letters WHERE delivery_id = ?`);
  const requeue = ctx.sql.get(
    `UPDATE deliveries SET state = ?, attempts = 0, replays = replays + 1, run_at = ?, updated_at = ?,
       completed_at = NULL
     WHERE id = ? AND state = 'dead'`,
  );
  const replayed: string[] = [];
  for (const row of select(ctx, selector)) {
    remove.run(row.delivery_id);
    const destination = registry.get(row.destination);
    const busy =
      row.order_key !== null &&
      destination !== undefined &&
      keyIsHeld(ctx, destination, row.order_key, { exceptDeliveryId: row.delivery_id, countWaiting: false });
    requeue.run(busy ? 'blocked' : 'pending', now, now, row.delivery_id);
    if (!busy) touch(row.destination);
    replayed.push(String(row.delivery_id));
  }
  return replayed;
}

export function deleteDeadLetters(ctx: SqliteContext, selector: DeadLetterSelector, touch: Touch): string[] {
  const now = ctx.clock.now();
  const remove = ctx.sql.get(`DELETE FROM dead_letters WHERE delivery_id = ?`);
  const discard = ctx.sql.get(
    `UPDATE deliveries SET state = 'discarded', completed_at = ?, updated_at = ? WHERE id = ? AND state = 'dead'`,
  );
  const deleted: string[] = [];
  for (const row of select(ctx, selector)) {
    remove.run(row.delivery_id);
    discard.run(now, now, row.delivery_id);
    promoteNext(ctx, row.destination, row.order_key, touch);
    deleted.push(String(row.delivery_id));
  }
  return deleted;
}

export function deadLetterStats(ctx: SqliteContext): DeadLetterStats {
  const now = ctx.clock.now();
  const totals = ctx.sql.get(`SELECT COUNT(*) AS count, MIN(dead_at) AS oldest FROM dead_letters`).get() as {
    count: number;
    oldest: number | null;
  };
  const byDestination = ctx.sql
    .get(`SELECT destination AS name, COUNT(*) AS count FROM dead_letters GROUP BY destination`)
    .all() as { name: string; count: number }[];
  const byType = ctx.sql
    .get(`SELECT event_type AS name, COUNT(*) AS count FROM dead_letters GROUP BY event_type`)
    .all() as { name: string; count: number }[];
  const topErrors = ctx.sql
    .get(
      `SELECT error_message AS message, COUNT(*) AS count FROM dead_letters
       GROUP BY error_message ORDER BY count DESC, message LIMIT 10`,
    )
    .all() as { message: string; count: number }[];
  return {
    count: totals.count,
    oldestDeadAt: totals.oldest,
    oldestAgeMs: totals.oldest === null ? null : Math.max(0, now - totals.oldest),
    byDestination: Object.fromEntries(byDestination.map((r) => [r.name, r.count])),
    byType: Object.fromEntries(byType.map((r) => [r.name, r.count])),
    topErrors,
  };
}
