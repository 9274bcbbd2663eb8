import type { DestinationQueueStats, EventRecord, QueueStats } from '../backend.js';
import type { SqliteContext } from './context.js';
import { toAttempt, toDelivery, toEvent, type AttemptRow, type DeliveryRow, type EventRow } from './rows.js';

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
    deliveries: deliveries.map((d) => toDelivery(d, (attempts.all(d.id) as AttemptRow[]).map(toAttempt))),
  };
}

interface OpenCountRow {
  destination: string;
  state: string;
  count: number;
  oldest: number;
}

export function queueStats(ctx: SqliteContext): QueueStats {
  const now = ctx.clock.now();
  const rows = ctx.sql
    .get(
      `SELECT destination, state, COUNT(*) AS count, MIN(created_at) AS oldest FROM deliveries
       WHERE state IN ('pending', 'blocked', 'retrying', 'processing', 'dead')
       GROUP BY destination, state`,
    )
    .all() as OpenCountRow[];
  const byDestination: Record<string, DestinationQueueStats> = {};
  let depth = 0;
  for (const row of rows) {
    const stats = (byDestination[row.destination] ??= {
      pending: 0,
      retrying: 0,
      processing: 0,
      dead: 0,
      oldestPendingAgeMs: null,
    }) as { -readonly [K in keyof DestinationQueueStats]: DestinationQueueStats[K] };
    const bucket =
      row.state === 'blocked' ? 'pending' : (row.state as 'pending' | 'retrying' | 'processing' | 'dead');
    stats[bucket] += row.count;
    if (bucket !== 'dead') {
      depth += row.count;
      const age = Math.max(0, now - row.oldest);
      stats.oldestPendingAgeMs = Math.max(stats.oldestPendingAgeMs ?? 0, age);
    }
  }
  return { depth, byDestination };
}
