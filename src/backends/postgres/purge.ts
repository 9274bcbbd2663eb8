import type { PurgeRequest, PurgeResult } from '../backend.js';
import type { Sql } from './database.js';

/**
 * Deletes old events whose deliveries are all finished (succeeded or discarded), with their
 * deliveries and attempts, and dedup entries past the window, in one statement. Dead letters
 * keep their event.
 */
export async function purge(sql: Sql, request: PurgeRequest): Promise<PurgeResult> {
  const limit = request.limit ?? 1000;
  const [row] = await sql.query<{ events: number; dedup_entries: number }>(
    `WITH doomed AS (
       SELECT e.seq FROM events e
       WHERE e.received_at < $1
         AND NOT EXISTS (
           SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq AND d.state NOT IN ('succeeded', 'discarded'))
       ORDER BY e.seq LIMIT $2
       FOR UPDATE SKIP LOCKED
     ), doomed_deliveries AS (
       DELETE FROM deliveries WHERE event_seq IN (SELECT seq FROM doomed) RETURNING id
     ), doomed_attempts AS (
       DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM doomed_deliveries)
     ), doomed_events AS (
       DELETE FROM events WHERE seq IN (SELECT seq FROM doomed) RETURNING seq
     ), expired AS (
       DELETE FROM dedup WHERE event_id IN (SELECT event_id FROM dedup WHERE seen_at < $3 LIMIT $4)
       RETURNING event_id
     )
     SELECT (SELECT COUNT(*) FROM doomed_events) AS events, (SELECT COUNT(*) FROM expired) AS dedup_entries`,
    [request.deliveredBefore, limit, request.dedupBefore, limit * 10],
  );
  return { events: row?.events ?? 0, dedupEntries: row?.dedup_entries ?? 0 };
}
