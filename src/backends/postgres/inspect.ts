import type { EventRecord, QueueStats } from '../backend.js';
import type { Sql } from './database.js';
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
export async function getEvent(sql: Sql, eventId: string): Promise<EventRecord | null> {
  const [event] = await sql.query<EventRow>(
    `SELECT * FROM events WHERE event_id = $1 ORDER BY seq DESC LIMIT 1`,
    [eventId],
  );
  if (!event) return null;
  const deliveries = await sql.query<DeliveryRow>(
    `SELECT * FROM deliveries WHERE event_seq = $1 ORDER BY id`,
    [event.seq],
  );
  const attempts = await sql.query<AttemptRow>(
    `SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
     WHERE d.event_seq = $1 ORDER BY a.delivery_id, a.number`,
    [event.seq],
  );
  return {
    event: toEvent(event),
    deliveries: deliveries.map((d) =>
      toDelivery(
        d,
        historyOf(
          d,
          attempts.filter((a) => a.delivery_id === d.id),
        ),
      ),
    ),
  };
}

/** Unfinished work per destination, read through the partial indexes that claims use. */
export async function queueStats(sql: Sql, now: number): Promise<QueueStats> {
  const rows = await sql.query<QueueCountRow>(
    `SELECT destination, state, COUNT(*) AS count, MIN(created_at) AS oldest FROM deliveries
     WHERE state IN ('pending', 'retrying', 'processing') GROUP BY destination, state
     UNION ALL
     SELECT destination, 'pending', COUNT(*), MIN(created_at) FROM deliveries
     WHERE order_key IS NOT NULL AND state IN ('pending', 'blocked', 'retrying', 'processing', 'dead')
       AND state = 'blocked'
     GROUP BY destination
     UNION ALL
     SELECT destination, 'dead', COUNT(*), NULL FROM dead_letters GROUP BY destination`,
  );
  return toQueueStats(rows, now);
}
