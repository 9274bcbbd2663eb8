import { eventFromEnvelope, typeMatches, type EventEnvelope } from '../../event.js';
import type { ClaimedDelivery, DestinationRecord, PublishOptions, PublishResult } from '../backend.js';
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

/**
 * Stores events and their deliveries. Runs inside the caller's transaction. A delivery that
 * `options.handOff` takes is stored leased (`processing`, attempt 1) and returned in `taken`;
 * the others are queued and their destinations touched.
 */
export function publishEvents(
  ctx: SqliteContext,
  registry: RegistryCache,
  events: readonly EventEnvelope[],
  options: PublishOptions,
  touch: Touch,
  nextToken: () => string,
): PublishResult[] {
  const { handOff } = options;
  handOff?.restart();
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
  const insertLeased = ctx.sql.get(
    `INSERT INTO deliveries (event_seq, destination, order_key, state, attempts, total_attempts, run_at,
       lease_token, started_at, created_at, updated_at)
     VALUES (?, ?, ?, 'processing', 1, 1, ?, ?, ?, ?, ?)`,
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
    const taken: ClaimedDelivery[] = [];
    for (const destination of destinations) {
      if (!typeMatches(destination.types, event.type)) continue;
      targets.push(destination.name);
      const orderKey = destination.ordered ? event.key : null;
      if (orderKey !== null && keyIsHeld(ctx, destination, orderKey, { countWaiting: true })) {
        insertDelivery.run(seq, destination.name, orderKey, 'blocked', now, now, now);
        continue;
      }
      const leaseMs = handOff?.take(destination.name) ?? null;
      if (leaseMs === null) {
        insertDelivery.run(seq, destination.name, orderKey, 'pending', now, now, now);
        touch(destination.name);
        continue;
      }
      const token = nextToken();
      const id = insertLeased.run(
        seq,
        destination.name,
        orderKey,
        now + leaseMs,
        token,
        now,
        now,
        now,
      ).lastInsertRowid;
      taken.push({
        lease: { deliveryId: String(id), token },
        destination: destination.name,
        attempt: 1,
        recoveredLease: false,
        leaseExpiries: 0,
        event: eventFromEnvelope(event, now),
      });
    }
    return {
      eventId: event.eventId,
      duplicate: false,
      destinations: targets,
      receivedAt: now,
      ...(taken.length > 0 ? { taken } : {}),
    };
  });
}
