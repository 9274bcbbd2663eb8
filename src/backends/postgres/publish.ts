import { typeMatches, type EventEnvelope } from '../../event.js';
import type { PublishOptions, PublishResult } from '../backend.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import type { PgContext } from './context.js';
import type { Sql } from './database.js';
import { heldKeys, keyId, lockKeys, type KeyRef } from './key-order.js';

/** One caller's `publish`. */
export interface PublishCall {
  readonly events: readonly EventEnvelope[];
  readonly options: PublishOptions;
}

export interface PublishOutcome {
  /** One answer list per call, in call order. */
  readonly results: PublishResult[][];
  /** The deliveries created due at once (not those waiting behind their key). */
  readonly scheduled: ScheduledDelivery[];
}

interface Candidate {
  readonly event: EventEnvelope;
  readonly cutoff: number;
}

interface NewDelivery {
  readonly seq: number;
  readonly destination: string;
  readonly orderKey: string | null;
  state: 'pending' | 'blocked';
}

/**
 * Stores the events of several calls and their deliveries, inside the caller's transaction,
 * with a handful of multi-row statements whatever the number of events. An `eventId` already
 * claimed in this batch, or seen inside its caller's dedup window, is a duplicate.
 */
export async function publishBatch(
  ctx: PgContext,
  sql: Sql,
  calls: readonly PublishCall[],
): Promise<PublishOutcome> {
  const now = ctx.clock.now();
  const destinations = await ctx.registry.current(sql);

  // The first occurrence of an id in the batch competes for the dedup entry; later ones are duplicates.
  const firsts = new Map<string, Candidate>();
  for (const call of calls) {
    for (const event of call.events) {
      if (!firsts.has(event.eventId)) {
        firsts.set(event.eventId, { event, cutoff: now - call.options.dedupWindowMs });
      }
    }
  }
  const seqs = await insertEvents(sql, [...firsts.values()], now);

  const deliveries: NewDelivery[] = [];
  const targets = new Map<number, string[]>();
  const keys = new Map<string, KeyRef & { blockOnDead: boolean }>();
  for (const { event } of firsts.values()) {
    const seq = seqs.get(event.eventId);
    if (seq === undefined) continue;
    const names: string[] = [];
    for (const destination of destinations) {
      if (!typeMatches(destination.types, event.type)) continue;
      const orderKey = destination.ordered ? event.key : null;
      deliveries.push({ seq, destination: destination.name, orderKey, state: 'pending' });
      names.push(destination.name);
      if (orderKey !== null) {
        keys.set(keyId(destination.name, orderKey), {
          destination: destination.name,
          orderKey,
          blockOnDead: destination.onDeadLetter === 'block',
        });
      }
    }
    targets.set(seq, names);
  }

  if (keys.size > 0) {
    await lockKeys(sql, ctx.schema, [...keys.values()]);
    const held = await heldKeys(sql, [...keys.values()], { countWaiting: true });
    for (const delivery of deliveries) {
      if (delivery.orderKey === null) continue;
      const id = keyId(delivery.destination, delivery.orderKey);
      if (held.has(id)) delivery.state = 'blocked';
      else held.add(id); // later events of the key in this batch wait behind this one
    }
  }
  const scheduled = await insertDeliveries(sql, deliveries, now);

  const claimed = new Set<string>();
  const results = calls.map((call) =>
    call.events.map((event): PublishResult => {
      const seq = seqs.get(event.eventId);
      if (seq === undefined || claimed.has(event.eventId)) {
        return { eventId: event.eventId, duplicate: true, destinations: [], receivedAt: now };
      }
      claimed.add(event.eventId);
      return {
        eventId: event.eventId,
        duplicate: false,
        destinations: targets.get(seq) ?? [],
        receivedAt: now,
      };
    }),
  );
  return { results, scheduled };
}

/**
 * Claims the dedup entries and inserts the events that won them, one statement per distinct
 * dedup window (callers nearly always share one). Answers the new sequence number by event id.
 */
async function insertEvents(
  sql: Sql,
  candidates: readonly Candidate[],
  now: number,
): Promise<Map<string, number>> {
  const seqs = new Map<string, number>();
  const byCutoff = new Map<number, Candidate[]>();
  for (const candidate of candidates) {
    const group = byCutoff.get(candidate.cutoff);
    if (group) group.push(candidate);
    else byCutoff.set(candidate.cutoff, [candidate]);
  }
  for (const [cutoff, group] of byCutoff) {
    const events = group.map((c) => c.event);
    const rows = await sql.query<{ seq: number; event_id: string }>(
      `WITH input AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                              $8::text[]) WITH ORDINALITY
           AS t(event_id, type, key, payload, occurred_at, correlation_id, source, metadata, ord)
       ), claimed AS (
         INSERT INTO dedup AS d (event_id, seen_at)
         SELECT event_id, $9 FROM input ORDER BY event_id
         ON CONFLICT (event_id) DO UPDATE SET seen_at = excluded.seen_at WHERE d.seen_at < $10
         RETURNING event_id
       )
       INSERT INTO events (event_id, type, key, payload, occurred_at, correlation_id, source, metadata, received_at)
       SELECT i.event_id, i.type, i.key, i.payload, i.occurred_at, i.correlation_id, i.source, i.metadata, $9
       FROM input i JOIN claimed c ON c.event_id = i.event_id
       ORDER BY i.ord
       RETURNING seq, event_id`,
      [
        events.map((e) => e.eventId),
        events.map((e) => e.type),
        events.map((e) => e.key),
        events.map((e) => e.payloadJson),
        events.map((e) => e.occurredAt),
        events.map((e) => e.correlationId),
        events.map((e) => e.source),
        events.map((e) => e.metadataJson),
        now,
        cutoff,
      ],
    );
    for (const row of rows) seqs.set(row.event_id, row.seq);
  }
  return seqs;
}

async function insertDeliveries(
  sql: Sql,
  deliveries: readonly NewDelivery[],
  now: number,
): Promise<ScheduledDelivery[]> {
  if (deliveries.length === 0) return [];
  const rows = await sql.query<{ id: number; destination: string; state: string }>(
    `INSERT INTO deliveries (event_seq, destination, order_key, state, run_at, created_at, updated_at)
     SELECT event_seq, destination, order_key, state, $5, $5, $5
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
       AS t(event_seq, destination, order_key, state, ord)
     ORDER BY ord
     RETURNING id, destination, state`,
    [
      deliveries.map((d) => d.seq),
      deliveries.map((d) => d.destination),
      deliveries.map((d) => d.orderKey),
      deliveries.map((d) => d.state),
      now,
    ],
  );
  return rows
    .filter((r) => r.state === 'pending')
    .sort((a, b) => a.id - b.id)
    .map((r) => ({ deliveryId: String(r.id), destination: r.destination, runAt: now }));
}
