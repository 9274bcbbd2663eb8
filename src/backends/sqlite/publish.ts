import { typeMatches, type EventEnvelope } from '../../event.js';
import type { DestinationRecord, PublishOptions, PublishResult } from '../backend.js';
import type { SqliteContext } from './context.js';
import type { Touch } from './write-queue.js';
import type { RegistryCache } from './registry.js';

/**
 * Does another delivery hold this key, so a new or replayed one must wait its turn? Waiting
 * (`blocked`) deliveries count for a new event (they are ahead of it in line) but not for a
 * replayed one, which is older than them. Under the `block` policy a dead letter holds its key.
 */
export function keyIsHeld(
  ctx: SqliteContext,
  destination: DestinationRecord,
  orderKey: string,
  options: { exceptDeliveryId?: number; countWaiting: boolean },
): boolean {
  const row = ctx.sql
    .get(
      `SELECT state FROM deliveries
       WHERE destination = ? AND order_key = ? AND order_key IS NOT NULL
         AND state IN ('pending', 'blocked', 'retrying', 'processing', 'dead')
         AND (state <> 'dead' OR ?) AND (state <> 'blocked' OR ?) AND id <> ?
       LIMIT 1`,
    )
    .get(
      destination.name,
      orderKey,
      destination.onDeadLetter === 'block' ? 1 : 0,
      options.countWaiting ? 1 : 0,
      options.exceptDeliveryId ?? -1,
    );
  return row !== undefined;
}

/** Stores events and their deliveries. Runs inside the caller's transaction. */
export function publishEvents(
  ctx: SqliteContext,
  registry: RegistryCache,
  events: readonly EventEnvelope[],
  options: PublishOptions,
  touch: Touch,
): PublishResult[] {
  const now = ctx.clock.now();
  const dedupCutoff = now - options.dedupWindowMs;
  const destinations = registry.current();
  const claimId = ctx.sql.get(
    `INSERT INTO dedup (event_id, seen_at) VALUES (?, ?)
     ON CONFLICT (event_id) DO UPDATE SET seen_at = excluded.seen_at WHERE dedup.seen_at < ?`,
  );
  const insertEvent = ctx.sql.get(
    `INSERT INTO events (event_id, type, key, payload, occurred_at, correlation_id, source, metadata, received_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertDelivery = ctx.sql.get(
    `INSERT INTO deliveries (event_seq, destination, order_key, state, run_at, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );

  return events.map((event) => {
    if (claimId.run(event.eventId, now, dedupCutoff).changes === 0) {
      return { eventId: event.eventId, duplicate: true, destinations: [], receivedAt: now };
    }
    const seq = insertEvent.run(
      event.eventId,
      event.type,
      event.key,
      event.payloadJson,
      event.occurredAt,
      event.correlationId,
      event.source,
      event.metadataJson,
      now,
    ).lastInsertRowid;
    const targets: string[] = [];
    for (const destination of destinations) {
      if (!typeMatches(destination.types, event.type)) continue;
      const orderKey = destination.ordered ? event.key : null;
      const state =
        orderKey !== null && keyIsHeld(ctx, destination, orderKey, { countWaiting: true })
          ? 'blocked'
          : 'pending';
      insertDelivery.run(seq, destination.name, orderKey, state, now, now, now);
      targets.push(destination.name);
      if (state === 'pending') touch(destination.name);
    }
    return { eventId: event.eventId, duplicate: false, destinations: targets, receivedAt: now };
  });
}
