/**
 * The standard peer workload and its checks, the same for every system: events of about 300
 * bytes, one destination at concurrency 16 whose handler inserts each event into the PostgreSQL
 * table `sink_events(event_id uuid primary key, body jsonb)` through a pool of 10, and four ways
 * of adding them (one awaited add at a time, 16 in flight, batches of 1,000, and 16 in flight
 * with failures). Each run checks that the sink holds every good event exactly once and that
 * the poison events ended dead-lettered (failed, for the peers).
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { distribution, signal, type Distribution } from '../support.js';
import { cpuSince, cpuSnapshot, type CpuSpent } from './cpu.js';
import { DATABASE_URL, ident, uniqueName, withAdmin } from './services.js';
import type { BenchEvent, BenchHandler, ConsumerOptions, PeerSystem } from './system.js';

export const CONSUMER: ConsumerOptions = { concurrency: 16, maxAttempts: 3, backoffBaseMs: 10 };
export const SINK_POOL_SIZE = 10;

export type VariantName = 'single' | 'inflight' | 'batch' | 'failures';

export interface VariantPlan {
  readonly name: VariantName;
  readonly title: string;
  /** Events added (the single variant may lower it for a slow system, see `singleBudgetMs`). */
  readonly events: number;
  readonly producer:
    | { readonly kind: 'single' }
    | { readonly kind: 'inflight'; readonly inFlight: number }
    | { readonly kind: 'batch'; readonly batchSize: number };
  /** 10 % of events fail on their first two attempts, 1 % on every attempt. */
  readonly failures: boolean;
}

export interface RunLimits {
  /** Events added and delivered (16 in flight) before the measured part, then cleared away. */
  readonly warmupEvents: number;
  /** The single-awaited variant adds fewer events where the full count would take longer than this. */
  readonly singleBudgetMs: number;
  /** A run (warm-up excluded) stops after this long, whatever is left. */
  readonly runLimitMs: number;
  /** After everything settled, wait this long for late duplicate deliveries before checking. */
  readonly graceMs: number;
}

export interface SinkCheck {
  readonly expected: number;
  /** Good events found in the sink. */
  readonly found: number;
  /** Rows in the sink that are not good events of this run. */
  readonly unexpected: number;
  /** Inserts of an event already in the sink (a second successful delivery). */
  readonly duplicates: number;
  /** Handler calls beyond the attempts an event should get. */
  readonly extraAttempts: number;
  readonly ok: boolean;
}

export interface DeadCheck {
  readonly expected: number;
  readonly found: number;
  readonly ok: boolean;
}

export interface RunResult {
  readonly system: string;
  readonly variant: VariantName;
  readonly events: number;
  /** Events / (first add call -> last event settled: in the sink, or its last attempt failed). */
  readonly eventsPerSec: number;
  /** Events / (first add call -> last add acknowledged). */
  readonly addsPerSec: number;
  /** Add call started -> the handler's insert finished, per good event. */
  readonly latency: Distribution;
  readonly elapsedMs: number;
  readonly sink: SinkCheck;
  readonly dead: DeadCheck;
  /** CPU milliseconds per event of the measured phase (first add -> last event settled). */
  readonly cpuPerEvent: CpuSpent;
  /** Set when the run hit its time limit or failed; the figures are then partial. */
  readonly problem: string | null;
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

const NOTE_FILLER = 'x'.repeat(200);

/** Event `seq` of a run: about 300 bytes as JSON (eventId, type, key, payload). */
export function makeEvent(seq: number): BenchEvent {
  const customer = seq % 997;
  const event: BenchEvent = {
    eventId: randomUUID(),
    type: 'order.placed',
    key: `customer-${customer}`,
    payload: {
      seq,
      orderId: `order-${seq.toString().padStart(8, '0')}`,
      customerId: `customer-${customer}`,
      amountCents: (seq * 7919) % 100_000,
      currency: 'EUR',
      lines: 1 + (seq % 5),
      note: '',
    },
  };
  const bytes = Buffer.byteLength(JSON.stringify(event));
  return { ...event, payload: { ...event.payload, note: NOTE_FILLER.slice(0, Math.max(0, 300 - bytes)) } };
}

const GOOD = 0;
const FAILS_TWICE = 1;
const POISON = 2;

/** Which events fail: every 100th always (1 %), and 10 % of the others on their first two attempts. */
function kindOf(seq: number, failures: boolean): number {
  if (!failures) return GOOD;
  if (seq % 100 === 50) return POISON;
  if (seq % 10 === 3) return FAILS_TWICE;
  return GOOD;
}

class TransientFailure extends Error {
  override readonly name = 'TransientFailure';
}

class PoisonFailure extends Error {
  override readonly name = 'PoisonFailure';
}

// ---------------------------------------------------------------------------------------------
// Sink
// ---------------------------------------------------------------------------------------------

/** `sink_events` in a schema of its own, written through a pool of 10; dropped by `close`. */
export class Sink {
  readonly schema = uniqueName('steadfast_bench_sink');
  readonly table = `${ident(this.schema)}.sink_events`;
  private readonly pool = new pg.Pool({ connectionString: DATABASE_URL, max: SINK_POOL_SIZE });

  async open(): Promise<void> {
    this.pool.on('error', () => undefined);
    await this.pool.query(`CREATE SCHEMA ${ident(this.schema)}`);
    await this.pool.query(`CREATE TABLE ${this.table} (event_id uuid PRIMARY KEY, body jsonb NOT NULL)`);
  }

  /** Answers false when the event was in the sink already (a duplicate delivery). */
  async insert(event: BenchEvent): Promise<boolean> {
    const result = await this.pool.query(
      `INSERT INTO ${this.table} (event_id, body) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING`,
      [event.eventId, JSON.stringify(event)],
    );
    return result.rowCount === 1;
  }

  async clear(): Promise<void> {
    await this.pool.query(`TRUNCATE ${this.table}`);
  }

  /** Rows that are among `ids`, and rows that are not. */
  async count(ids: readonly string[]): Promise<{ found: number; unexpected: number }> {
    const { rows } = await this.pool.query<{ total: string; found: string }>(
      `SELECT count(*) AS total, count(*) FILTER (WHERE event_id = ANY($1::uuid[])) AS found FROM ${this.table}`,
      [ids],
    );
    const total = Number(rows[0]?.total ?? 0);
    const found = Number(rows[0]?.found ?? 0);
    return { found, unexpected: total - found };
  }

  async close(): Promise<void> {
    try {
      await this.pool.end();
    } finally {
      await withAdmin((admin) => admin.query(`DROP SCHEMA IF EXISTS ${ident(this.schema)} CASCADE`));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One phase of a run: its events, and what the handler saw of them
// ---------------------------------------------------------------------------------------------

class Phase {
  readonly events: BenchEvent[];
  readonly kinds: Uint8Array;
  readonly addStart: Float64Array;
  readonly settledAt: Float64Array;
  readonly attempts: Uint16Array;
  readonly goodIds: string[] = [];
  readonly poison: number;
  readonly done = signal();
  duplicates = 0;
  extraAttempts = 0;
  private remaining: number;

  constructor(count: number, failures: boolean) {
    this.events = Array.from({ length: count }, (_, seq) => makeEvent(seq));
    this.kinds = Uint8Array.from(this.events, (_, seq) => kindOf(seq, failures));
    this.addStart = new Float64Array(count).fill(NaN);
    this.settledAt = new Float64Array(count).fill(NaN);
    this.attempts = new Uint16Array(count);
    let poison = 0;
    this.events.forEach((event, seq) => {
      if (this.kinds[seq] === POISON) poison += 1;
      else this.goodIds.push(event.eventId);
    });
    this.poison = poison;
    this.remaining = count;
    if (count === 0) this.done.resolve();
  }

  owns(event: BenchEvent): boolean {
    return this.events[event.payload.seq]?.eventId === event.eventId;
  }

  settle(seq: number): void {
    this.settledAt[seq] = performance.now();
    this.remaining -= 1;
    if (this.remaining === 0) this.done.resolve();
  }

  /** Good events that reached the sink, and every settled event's time. */
  figures(): { latencies: Float64Array; lastSettled: number; firstAdd: number } {
    const latencies: number[] = [];
    let lastSettled = NaN;
    let firstAdd = NaN;
    for (let seq = 0; seq < this.events.length; seq += 1) {
      const settled = this.settledAt[seq] ?? NaN;
      const added = this.addStart[seq] ?? NaN;
      if (!Number.isNaN(added) && !(added >= firstAdd)) firstAdd = added;
      if (Number.isNaN(settled)) continue;
      if (!(lastSettled >= settled)) lastSettled = settled;
      if (this.kinds[seq] !== POISON) latencies.push(settled - added);
    }
    return { latencies: Float64Array.from(latencies), lastSettled, firstAdd };
  }
}

/** The handler every system runs: fails as the event's kind says, otherwise inserts into the sink. */
function makeHandler(sink: Sink, current: () => Phase | null, strays: { count: number }): BenchHandler {
  return async (event) => {
    const phase = current();
    if (!phase || !phase.owns(event)) {
      // A late second delivery of a warm-up event: not this phase's, but still counted against the run.
      strays.count += 1;
      return;
    }
    const seq = event.payload.seq;
    const attempt = (phase.attempts[seq] ?? 0) + 1;
    phase.attempts[seq] = attempt;
    const kind = phase.kinds[seq];
    if (kind === POISON) {
      if (attempt === CONSUMER.maxAttempts) phase.settle(seq);
      if (attempt > CONSUMER.maxAttempts) phase.extraAttempts += 1;
      throw new PoisonFailure(`event ${seq} always fails`);
    }
    if (kind === FAILS_TWICE && attempt <= 2) throw new TransientFailure(`event ${seq} fails twice`);
    const fresh = await sink.insert(event);
    if (fresh) phase.settle(seq);
    else phase.duplicates += 1;
  };
}

// ---------------------------------------------------------------------------------------------
// Producers
// ---------------------------------------------------------------------------------------------

/** Adds `phase.events` as the plan says; stops early (answering false) at `deadline`. */
async function produce(
  system: PeerSystem,
  phase: Phase,
  producer: VariantPlan['producer'],
  deadline: number,
): Promise<boolean> {
  const { events, addStart } = phase;
  let next = 0;
  let stoppedEarly = false;
  const one = async (): Promise<void> => {
    for (;;) {
      const seq = next;
      next += 1;
      if (seq >= events.length) return;
      if (performance.now() > deadline) {
        stoppedEarly = true;
        return;
      }
      addStart[seq] = performance.now();
      await system.add(events[seq] as BenchEvent);
    }
  };
  switch (producer.kind) {
    case 'single':
      await one();
      break;
    case 'inflight':
      await Promise.all(Array.from({ length: producer.inFlight }, one));
      break;
    case 'batch':
      for (let from = 0; from < events.length; from += producer.batchSize) {
        if (performance.now() > deadline) {
          stoppedEarly = true;
          break;
        }
        const chunk = events.slice(from, from + producer.batchSize);
        addStart.fill(performance.now(), from, from + chunk.length);
        await system.addBatch(chunk);
      }
      break;
  }
  return !stoppedEarly;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves true when `promise` does, false at `deadline`. */
async function before(promise: Promise<void>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()));
  });
  try {
    return await Promise.race([promise.then(() => true as const), expired]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// One run: a fresh system, warm-up, the measured phase, the checks, teardown
// ---------------------------------------------------------------------------------------------

export interface RunContext {
  readonly sink: Sink;
  readonly limits: RunLimits;
  /** Progress lines (stderr), so the Markdown on stdout stays clean. */
  readonly log: (line: string) => void;
}

export async function runVariant(
  system: PeerSystem,
  plan: VariantPlan,
  { sink, limits, log }: RunContext,
): Promise<RunResult> {
  let phase: Phase | null = null;
  const strays = { count: 0 };
  const handler = makeHandler(sink, () => phase, strays);
  let problem: string | null = null;
  let events = plan.events;
  let measured: Phase | null = null;
  let addsDoneAt = NaN;
  let dead = 0;
  let cpu: CpuSpent = { processMs: NaN, postgresMs: NaN, redisMs: NaN };
  try {
    await sink.clear();
    await system.setup();
    await system.start(handler, CONSUMER);

    // Warm-up: the same producer as the variant, no failures; every event delivered, then cleared.
    const warmup = new Phase(limits.warmupEvents, false);
    phase = warmup;
    const warmupStarted = performance.now();
    await produce(system, warmup, plan.producer, Number.POSITIVE_INFINITY);
    const warmupAddsMs = performance.now() - warmupStarted;
    if (!(await before(warmup.done.promise, performance.now() + limits.runLimitMs))) {
      throw new Error(
        `warm-up of ${limits.warmupEvents} events not delivered within ${limits.runLimitMs} ms`,
      );
    }
    if (plan.producer.kind === 'single') {
      const estimateMs = (warmupAddsMs / limits.warmupEvents) * plan.events;
      if (estimateMs > limits.singleBudgetMs) {
        const affordable = (limits.warmupEvents / warmupAddsMs) * limits.singleBudgetMs;
        const step = plan.events >= 10_000 ? 1_000 : 100;
        events = Math.max(step, Math.floor(affordable / step) * step);
      }
    }
    phase = null;
    await sink.clear();
    strays.count = 0;

    // The measured phase.
    measured = new Phase(events, plan.failures);
    phase = measured;
    log(`  ${system.name} / ${plan.name}: ${events} events`);
    const cpuAtStart = cpuSnapshot();
    const started = performance.now();
    const deadline = started + limits.runLimitMs;
    const complete = await produce(system, measured, plan.producer, deadline);
    addsDoneAt = performance.now();
    if (!complete) problem = `time limit (${limits.runLimitMs} ms) reached while adding`;
    if (!(await before(measured.done.promise, deadline))) {
      problem ??= `time limit (${limits.runLimitMs} ms) reached before every event settled`;
    }
    cpu = cpuSince(cpuAtStart);
    // The last failed attempt is recorded by the system after the handler threw: wait for it.
    const deadDeadline = Math.max(deadline, performance.now() + 5_000);
    for (;;) {
      dead = await system.deadOrFailedCount();
      if (dead >= measured.poison || performance.now() > deadDeadline) break;
      await sleep(50);
    }
    await sleep(limits.graceMs);
    dead = await system.deadOrFailedCount();
  } catch (error) {
    problem = error instanceof Error ? error.message : String(error);
  } finally {
    phase = null;
    try {
      await system.teardown();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      problem = problem ? `${problem}; teardown: ${message}` : `teardown: ${message}`;
    }
  }
  const perEvent = (ms: number): number => ms / events;
  const cpuPerEvent = {
    processMs: perEvent(cpu.processMs),
    postgresMs: perEvent(cpu.postgresMs),
    redisMs: perEvent(cpu.redisMs),
  };
  return summarise(
    system.name,
    plan,
    measured,
    events,
    addsDoneAt,
    dead,
    problem,
    sink,
    strays.count,
    cpuPerEvent,
  );
}

async function summarise(
  systemName: string,
  plan: VariantPlan,
  measured: Phase | null,
  events: number,
  addsDoneAt: number,
  dead: number,
  problem: string | null,
  sink: Sink,
  strays: number,
  cpuPerEvent: CpuSpent,
): Promise<RunResult> {
  if (!measured) {
    const none = distribution([]);
    return {
      system: systemName,
      variant: plan.name,
      events,
      eventsPerSec: NaN,
      addsPerSec: NaN,
      latency: none,
      elapsedMs: NaN,
      sink: { expected: 0, found: 0, unexpected: 0, duplicates: 0, extraAttempts: 0, ok: false },
      dead: { expected: 0, found: dead, ok: false },
      cpuPerEvent,
      problem: problem ?? 'did not run',
    };
  }
  const { latencies, lastSettled, firstAdd } = measured.figures();
  const elapsedMs = lastSettled - firstAdd;
  const rows = await sink.count(measured.goodIds).catch(() => ({ found: NaN, unexpected: NaN }));
  const counted = { found: rows.found, unexpected: rows.unexpected + strays };
  const expected = measured.goodIds.length;
  return {
    system: systemName,
    variant: plan.name,
    events,
    eventsPerSec: (events / elapsedMs) * 1000,
    addsPerSec: (events / (addsDoneAt - firstAdd)) * 1000,
    latency: distribution(latencies),
    elapsedMs,
    sink: {
      expected,
      found: counted.found,
      unexpected: counted.unexpected,
      duplicates: measured.duplicates,
      extraAttempts: measured.extraAttempts,
      ok:
        counted.found === expected &&
        counted.unexpected === 0 &&
        measured.duplicates === 0 &&
        measured.extraAttempts === 0,
    },
    dead: { expected: measured.poison, found: dead, ok: dead === measured.poison },
    cpuPerEvent,
    problem,
  };
}
