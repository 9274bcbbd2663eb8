import type { EventRecord, QueueStats } from '../backend.js';
import type { SqliteContext } from './context.js';
import {
  historyOf,
  toDelivery,
  toEvent,
  type AttemptRow,
  type DeliveryRow,
  type EventRow,
  toQueueStats,
  type QueueCountRow,
} from './rows.js';

/** The most recent event with this id, each delivery's state and its full attempt history. */
export function getEvent(ctx: SqliteContext, eventId: string): EventRecord | null {
  const event = ctx.sql
    .get(`SELECT * FROM events WHERE event_id = ? ORDER BY seq DESC LIMIT 1`)
    .get(eventId) as EventRow | undefined;
  if (!event) return null;
  const deliveries = ctx.sql
    .get(`SELECT * FROM deliveries WHERE event_seq = ? ORDER BY id`)
    .all(event.seq) as DeliveryRow[];
  const attempts = ctx.sql.get(`SELECT * FROM attempts WHERE delivery_id = ? ORDER BY number`);
  return {
    event: toEvent(event),
    deliveries: deliveries.map((d) => toDelivery(d, historyOf(d, attempts.all(d.id) as AttemptRow[]))),
  };
}

/** Unfinished work per destination, read through the partial indexes that claims use. */
export function queueStats(ctx: SqliteContext): QueueStats {
  const now = ctx.clock.now();
  const due = ctx.sql
    .get(
      `SELECT destination, state, COUNT(*) AS count, MIN(created_at) AS oldest FROM deliveries
       WHERE state IN ('pending', 'retrying', 'processing') GROUP BY destination, state`,
    )
    .all() as QueueCountRow[];
  const waiting = ctx.sql
    .get(
      `SELECT destination, 'pending' AS state, COUNT(*) AS count, MIN(created_at) AS oldest FROM deliveries
       WHERE order_key IS NOT NULL AND state IN ('pending', 'blocked', 'retrying', 'processing', 'dead')
         AND state = 'blocked'
       GROUP BY destination`,
    )
    .all() as QueueCountRow[];
  const dead = ctx.sql
    .get(
      `SELECT destination, 'dead' AS state, COUNT(*) AS count, NULL AS oldest FROM dead_letters GROUP BY destination`,
    )
    .all() as QueueCountRow[];
  return toQueueStats([...due, ...waiting, ...dead], now);
}
