import { InvalidOptionError } from '../../errors.js';
import type {
  DeadLetter,
  DeadLetterFilter,
  DeadLetterPage,
  DeadLetterQuery,
  DeadLetterSelector,
  DeadLetterStats,
  ErrorInfo,
} from '../backend.js';
import type { SqliteContext } from './context.js';
import { keyIsHeld } from './publish.js';
import type { RegistryCache } from './registry.js';
import { promoteNext } from './settle.js';
import { EVENT_COLUMNS, parseError, toAttempt, toEvent, type AttemptRow, type EventRow } from './rows.js';
import type { Touch } from './write-queue.js';

interface DeadLetterRow extends EventRow {
  dl_seq: number;
  dl_delivery_id: number;
  dl_destination: string;
  dl_dead_at: number;
  d_attempts: number;
  d_last_error: string | null;
  d_first_failed_at: number | null;
  d_last_failed_at: number | null;
  d_order_key: string | null;
}

const SELECT_DEAD_LETTERS = `
  SELECT dl.seq AS dl_seq, dl.delivery_id AS dl_delivery_id, dl.destination AS dl_destination,
         dl.dead_at AS dl_dead_at, d.attempts AS d_attempts, d.last_error AS d_last_error,
         d.first_failed_at AS d_first_failed_at, d.last_failed_at AS d_last_failed_at,
         d.order_key AS d_order_key, ${EVENT_COLUMNS}
  FROM dead_letters dl
  JOIN deliveries d ON d.id = dl.delivery_id
  JOIN events e ON e.seq = d.event_seq`;

export const MAX_PAGE = 1000;

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

function toDeadLetter(ctx: SqliteContext, row: DeadLetterRow): DeadLetter {
  const error: ErrorInfo = parseError(row.d_last_error) ?? {
    name: 'Error',
    code: null,
    message: 'unknown error',
    stack: null,
  };
  return {
    id: String(row.dl_delivery_id),
    destination: row.dl_destination,
    event: toEvent(row),
    attempts: row.d_attempts,
    error,
    firstFailedAt: row.d_first_failed_at ?? row.dl_dead_at,
    lastFailedAt: row.d_last_failed_at ?? row.dl_dead_at,
    deadAt: row.dl_dead_at,
    history: history(ctx, row.dl_delivery_id),
  };
}

function parseCursor(cursor: string | undefined): number | null {
  if (cursor === undefined) return null;
  const seq = Number(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!Number.isSafeInteger(seq) || seq < 0) throw new InvalidOptionError(`invalid cursor: ${cursor}`);
  return seq;
}

/** Newest first. The cursor is opaque to callers. */
export function listDeadLetters(ctx: SqliteContext, query: DeadLetterQuery): DeadLetterPage {
  const limit = query.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new InvalidOptionError(`limit must be an integer from 1 to ${MAX_PAGE}, got ${limit}`);
  }
  const { clause, params } = where(query);
  const before = parseCursor(query.cursor);
  const cursorClause = before === null ? '' : `${clause ? ' AND' : 'WHERE'} dl.seq < ?`;
  const rows = ctx.db
    .prepare(`${SELECT_DEAD_LETTERS} ${clause}${cursorClause} ORDER BY dl.seq DESC LIMIT ?`)
    .all(...params, ...(before === null ? [] : [before]), limit + 1) as DeadLetterRow[];
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map((row) => toDeadLetter(ctx, row)),
    nextCursor: rows.length > limit && last ? Buffer.from(String(last.dl_seq)).toString('base64url') : null,
  };
}

export function getDeadLetter(ctx: SqliteContext, id: string): DeadLetter | null {
  const deliveryId = Number(id);
  if (!Number.isSafeInteger(deliveryId)) return null;
  const row = ctx.sql.get(`${SELECT_DEAD_LETTERS} WHERE dl.delivery_id = ?`).get(deliveryId) as
    DeadLetterRow | undefined;
  return row ? toDeadLetter(ctx, row) : null;
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
