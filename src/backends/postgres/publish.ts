import { eventFromEnvelope, typeMatches, type EventEnvelope } from '../../event.js';
import type { ClaimedDelivery, PublishOptions, PublishResult } from '../backend.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import type { PgContext } from './context.js';
import type { Sql } from './database.js';
import { heldKeys, keyId, lockKeys, type KeyRef } from './key-order.js';
import { workPayload } from './notify.js';
import { prepared } from './statements.js';

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
  /** Other processes were notified by the write itself (NOTIFY delivered at its commit). */
  readonly notified?: boolean;
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

/** Tries of the one-statement publish when the registry moved under it, before the transactional path. */
const DIRECT_TRIES = 3;

/** Numbers the lease tokens of handed-over deliveries (the backend's origin makes them unique). */
let handOffTokens = 0;

/** A delivery a runner took while the statement was built (see `HandOff`). */
interface Taken {
  readonly event: EventEnvelope;
  readonly destination: string;
  readonly token: string;
}

/**
 * The common case in ONE statement, so ONE round trip and no BEGIN/COMMIT (a statement commits
 * atomically on its own): claims the dedup entries, inserts the events that won them and their
 * deliveries. The fan-out is computed here from the cached registry; the statement inserts
 * nothing unless the registry version committed in its own snapshot is the cached one, so every
 * destination registered before the publish gets its delivery (a stale cache is re-read and the
 * statement sent again). Other processes are notified by the same statement, at its commit.
 * Deliveries the callers' runners take (`PublishOptions.handOff`) are inserted leased instead
 * of pending, and neither announced nor scheduled.
 * Answers null when the batch needs the transactional path: an event
 * bound for an ordered destination with a key (key locks, waiting deliveries), or calls with
 * different dedup windows.
 */
export async function publishDirect(
  ctx: PgContext,
  calls: readonly PublishCall[],
): Promise<PublishOutcome | null> {
  const now = ctx.clock.now();
  const cutoff = now - (calls[0]?.options.dedupWindowMs ?? 0);
  if (calls.some((c) => now - c.options.dedupWindowMs !== cutoff)) return null;
  const events = new Map<string, EventEnvelope>();
  const owners = new Map<string, PublishCall>();
  for (const call of calls) {
    for (const event of call.events) {
      if (events.has(event.eventId)) continue;
      events.set(event.eventId, event);
      owners.set(event.eventId, call);
    }
  }
  const firsts = [...events.values()];
  let registry =
    ctx.registry.cached() ?? (await ctx.db.run('read destinations', (sql) => ctx.registry.load(sql)));
  // Every try starts with no slot held: takes of a try that wrote nothing are void.
  const releaseTaken = (): void => {
    for (const call of calls) call.options.handOff?.restart();
  };
  // Bound for an ordered destination with a key: key locks and waiting deliveries, so the transactional path.
  const keyed = (event: EventEnvelope): boolean =>
    event.key !== null && registry.active.some((d) => d.ordered && typeMatches(d.types, event.type));
  for (let tried = 1; ; tried++) {
    releaseTaken();
    if (firsts.some(keyed)) return null;
    const targets = new Map<string, string[]>();
    const fanEvents: string[] = [];
    const fanDestinations: string[] = [];
    const fanLeaseUntil: (number | null)[] = [];
    const fanTokens: (string | null)[] = [];
    const taken = new Map<string, Taken>();
    const announced = new Set<string>();
    for (const event of firsts) {
      const names: string[] = [];
      const handOff = owners.get(event.eventId)?.options.handOff;
      for (const destination of registry.active) {
        if (!typeMatches(destination.types, event.type)) continue;
        names.push(destination.name);
        fanEvents.push(event.eventId);
        fanDestinations.push(destination.name);
        const leaseMs = handOff?.take(destination.name) ?? null;
        if (leaseMs === null) {
          fanLeaseUntil.push(null);
          fanTokens.push(null);
          announced.add(destination.name);
        } else {
          handOffTokens += 1;
          const token = `${ctx.notify.origin}.h${handOffTokens}`;
          fanLeaseUntil.push(now + leaseMs);
          fanTokens.push(token);
          taken.set(token, { event, destination: destination.name, token });
        }
      }
      targets.set(event.eventId, names);
    }
    const version = registry.version;
    const rows = await ctx.db.run('publish', (sql) =>
      sql.query<DirectRow>(PUBLISH_DIRECT, [
        firsts.map((e) => e.eventId),
        firsts.map((e) => e.type),
        firsts.map((e) => e.key),
        firsts.map((e) => e.payloadJson),
        firsts.map((e) => e.occurredAt),
        firsts.map((e) => e.correlationId),
        firsts.map((e) => e.source),
        firsts.map((e) => e.metadataJson),
        now,
        cutoff,
        version,
        fanEvents,
        fanDestinations,
        ctx.notify.channel,
        workPayload(ctx.notify.origin, [...announced]),
        fanLeaseUntil,
        fanTokens,
      ]),
    );
    const committed = rows.find((r) => r.version !== null)?.version ?? null;
    if (committed === version) {
      const inserted = new Set(rows.filter((r) => r.event_id !== null).map((r) => r.event_id));
      const delivered = rows.filter(
        (r): r is DirectRow & { id: number; destination: string } => r.id !== null,
      );
      const scheduled = delivered
        .filter((r) => r.lease_token === null)
        .sort((a, b) => a.id - b.id)
        .map((r) => ({ deliveryId: String(r.id), destination: r.destination, runAt: now }));
      const leased = new Map<string, ClaimedDelivery[]>();
      for (const row of delivered) {
        const take = row.lease_token === null ? undefined : taken.get(row.lease_token);
        if (!take) continue;
        const list = leased.get(take.event.eventId) ?? [];
        list.push({
          lease: { deliveryId: String(row.id), token: take.token },
          destination: take.destination,
          attempt: 1,
          recoveredLease: false,
          leaseExpiries: 0,
          event: eventFromEnvelope(take.event, now),
        });
        leased.set(take.event.eventId, list);
      }
      return { results: answers(calls, inserted, targets, now, leased), scheduled, notified: true };
    }
    // The registry moved: nothing was written. Read it again and fan out anew.
    if (tried >= DIRECT_TRIES) {
      releaseTaken();
      return null;
    }
    registry = await ctx.db.run('read destinations', (sql) => ctx.registry.load(sql));
  }
}

interface DirectRow {
  /** Set on the one row that carries the committed registry version. */
  version: number | null;
  /** Set on the rows of inserted events. */
  event_id: string | null;
  /** Set on the rows of inserted deliveries. */
  id: number | null;
  destination: string | null;
  /** Set on the rows of deliveries inserted leased to a runner of this process. */
  lease_token: string | null;
}

const PUBLISH_DIRECT = prepared(
  `WITH registry AS (
     SELECT value FROM meta WHERE key = 'registry_version'
   ), input AS (
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                          $8::text[]) WITH ORDINALITY
       AS t(event_id, type, key, payload, occurred_at, correlation_id, source, metadata, ord)
     WHERE (SELECT value FROM registry) = $11::bigint
   ), claimed AS (
     INSERT INTO dedup AS d (event_id, seen_at)
     SELECT event_id, $9::bigint FROM input ORDER BY event_id
     ON CONFLICT (event_id) DO UPDATE SET seen_at = excluded.seen_at WHERE d.seen_at < $10::bigint
     RETURNING event_id
   ), inserted AS (
     INSERT INTO events (event_id, type, key, payload, occurred_at, correlation_id, source, metadata, received_at)
     SELECT i.event_id, i.type, i.key, i.payload, i.occurred_at, i.correlation_id, i.source, i.metadata, $9::bigint
     FROM input i JOIN claimed c ON c.event_id = i.event_id
     ORDER BY i.ord
     RETURNING seq, event_id
   ), fanned AS (
     INSERT INTO deliveries (event_seq, destination, order_key, state, attempts, total_attempts, run_at,
                             lease_token, started_at, created_at, updated_at)
     SELECT e.seq, t.destination, NULL,
            CASE WHEN t.lease_token IS NULL THEN 'pending' ELSE 'processing' END,
            CASE WHEN t.lease_token IS NULL THEN 0 ELSE 1 END,
            CASE WHEN t.lease_token IS NULL THEN 0 ELSE 1 END,
            COALESCE(t.lease_until, $9::bigint), t.lease_token,
            CASE WHEN t.lease_token IS NULL THEN NULL ELSE $9::bigint END,
            $9::bigint, $9::bigint
     FROM unnest($12::text[], $13::text[], $16::bigint[], $17::text[]) WITH ORDINALITY
       AS t(event_id, destination, lease_until, lease_token, ord)
     JOIN inserted e ON e.event_id = t.event_id
     ORDER BY t.ord
     RETURNING id, destination, lease_token
   ), notified AS (
     SELECT pg_notify($14, $15) FROM (SELECT 1 FROM fanned WHERE lease_token IS NULL LIMIT 1) AS any_queued
   )
   SELECT value AS version, NULL::text AS event_id, NULL::bigint AS id, NULL::text AS destination,
          NULL::text AS lease_token
   FROM registry LEFT JOIN notified ON true
   UNION ALL SELECT NULL, event_id, NULL, NULL, NULL FROM inserted
   UNION ALL SELECT NULL, NULL, id, destination, lease_token FROM fanned`,
);

/** Each call's answers: the first occurrence of an inserted id is new, anything else a duplicate. */
function answers(
  calls: readonly PublishCall[],
  inserted: ReadonlySet<string | null>,
  targets: ReadonlyMap<string, readonly string[]>,
  now: number,
  leased: ReadonlyMap<string, readonly ClaimedDelivery[]>,
): PublishResult[][] {
  const claimed = new Set<string>();
  return calls.map((call) =>
    call.events.map((event): PublishResult => {
      if (!inserted.has(event.eventId) || claimed.has(event.eventId)) {
        return { eventId: event.eventId, duplicate: true, destinations: [], receivedAt: now };
      }
      claimed.add(event.eventId);
      const taken = leased.get(event.eventId);
      return {
        eventId: event.eventId,
        duplicate: false,
        destinations: targets.get(event.eventId) ?? [],
        receivedAt: now,
        ...(taken ? { taken } : {}),
      };
    }),
  );
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

const INSERT_EVENTS = prepared(
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
);

const INSERT_DELIVERIES = prepared(
  `INSERT INTO deliveries (event_seq, destination, order_key, state, run_at, created_at, updated_at)
     SELECT event_seq, destination, order_key, state, $5, $5, $5
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
       AS t(event_seq, destination, order_key, state, ord)
     ORDER BY ord
     RETURNING id, destination, state`,
);

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
    const rows = await sql.query<{ seq: number; event_id: string }>(INSERT_EVENTS, [
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
    ]);
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
  const rows = await sql.query<{ id: number; destination: string; state: string }>(INSERT_DELIVERIES, [
    deliveries.map((d) => d.seq),
    deliveries.map((d) => d.destination),
    deliveries.map((d) => d.orderKey),
    deliveries.map((d) => d.state),
    now,
  ]);
  return rows
    .filter((r) => r.state === 'pending')
    .sort((a, b) => a.id - b.id)
    .map((r) => ({ deliveryId: String(r.id), destination: r.destination, runAt: now }));
}
