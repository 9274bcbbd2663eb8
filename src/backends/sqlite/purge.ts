import type { PurgeRequest, PurgeResult } from '../backend.js';
import type { SqliteContext } from './context.js';

/**
 * Deletes old events whose deliveries are all finished (succeeded or discarded), with their
 * deliveries and attempts, and dedup entries past the window. Dead letters keep their event.
 */
export function purge(ctx: SqliteContext, request: PurgeRequest): PurgeResult {
  const limit = request.limit ?? 1000;
  const seqs = ctx.sql
    .get(
      `SELECT e.seq FROM events e
       WHERE e.received_at < ?
         AND NOT EXISTS (
           SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq AND d.state NOT IN ('succeeded', 'discarded'))
       ORDER BY e.seq LIMIT ?`,
    )
    .pluck()
    .all(request.deliveredBefore, limit) as number[];
  const dropAttempts = ctx.sql.get(
    `DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_seq = ?)`,
  );
  const dropDeliveries = ctx.sql.get(`DELETE FROM deliveries WHERE event_seq = ?`);
  const dropEvent = ctx.sql.get(`DELETE FROM events WHERE seq = ?`);
  for (const seq of seqs) {
    dropAttempts.run(seq);
    dropDeliveries.run(seq);
    dropEvent.run(seq);
  }
  const dedup = ctx.sql
    .get(`DELETE FROM dedup WHERE event_id IN (SELECT event_id FROM dedup WHERE seen_at < ? LIMIT ?)`)
    .run(request.dedupBefore, limit * 10);
  return { events: seqs.length, dedupEntries: dedup.changes };
}
