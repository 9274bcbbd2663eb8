/**
 * The benchmark scenarios. Each one runs against a fresh SQLite file in a fresh temporary
 * folder and stops its processor before it returns, whatever happens.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createProcessor, SqliteBackend, type ReliableEventProcessor } from '../src/index.js';
import {
  distribution,
  paced,
  signal,
  storageWriteBytes,
  within,
  withFreshStore,
  type Distribution,
} from './support.js';

/** A processor on a store of its own, plus its backend so group-commit figures can be read. */
interface Bench {
  readonly processor: ReliableEventProcessor;
  readonly backend: SqliteBackend;
}

/**
 * Builds the processor exactly as `createProcessor({ storage: { kind: 'sqlite', path } })` does
 * (same backend class, same defaults), but keeps a handle on the backend for `commitStats`.
 */
function openBench(dbPath: string): Bench {
  const backend = new SqliteBackend({ path: dbPath });
  const processor = createProcessor({ backend, logger: false });
  return { processor, backend };
}

async function withBench<T>(fn: (bench: Bench) => Promise<T>): Promise<T> {
  return withFreshStore(async (dbPath) => {
    const bench = openBench(dbPath);
    try {
      return await fn(bench);
    } finally {
      await bench.processor.stop({ timeoutMs: 5_000 });
    }
  });
}

/** A small, realistic payload (~150 bytes serialised). */
export function orderPayload(i: number): {
  orderId: string;
  customerId: string;
  amountCents: number;
  currency: string;
  lines: number;
} {
  return {
    orderId: `order-${i.toString().padStart(8, '0')}`,
    customerId: `customer-${i % 997}`,
    amountCents: (i * 7919) % 100_000,
    currency: 'EUR',
    lines: 1 + (i % 5),
  };
}

/** Group-commit figures, and bytes this process had written to storage (Linux), over a span. */
export interface CommitFigures {
  readonly commits: number;
  readonly writes: number;
  readonly diskBytes: number | null;
}

function snapshot(backend: SqliteBackend): CommitFigures {
  return { ...backend.commitStats, diskBytes: storageWriteBytes() };
}

function commitDelta(before: CommitFigures, after: CommitFigures): CommitFigures {
  return {
    commits: after.commits - before.commits,
    writes: after.writes - before.writes,
    diskBytes:
      before.diskBytes === null || after.diskBytes === null ? null : after.diskBytes - before.diskBytes,
  };
}

// ---------------------------------------------------------------------------------------------
// 1. addEvent ingest
// ---------------------------------------------------------------------------------------------

export interface IngestResult {
  readonly callers: number;
  readonly events: number;
  readonly elapsedMs: number;
  readonly eventsPerSec: number;
  /** addEvent call to resolution, per call. */
  readonly latency: Distribution;
  readonly commits: CommitFigures;
}

/** `callers` closed-loop producers share `total` addEvent calls; each awaits its call before the next. */
async function closedLoop(
  processor: ReliableEventProcessor,
  callers: number,
  total: number,
  first: number,
  latencies?: Float64Array,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next;
      next += 1;
      if (i >= total) return;
      const started = performance.now();
      await processor.addEvent({ type: 'order.placed', payload: orderPayload(first + i) });
      if (latencies) latencies[i] = performance.now() - started;
    }
  };
  await Promise.all(Array.from({ length: callers }, worker));
}

/**
 * Durable ingest only: one destination is declared (so each event also writes its delivery
 * row, as in real use) but the processor is never started, so nothing is delivered.
 */
export function ingestScenario(callers: number, total: number, warmup: number): Promise<IngestResult> {
  return withBench(async ({ processor, backend }) => {
    processor.destination('sink', { concurrency: 16 }, () => undefined);
    await closedLoop(processor, callers, warmup, 0);
    const latencies = new Float64Array(total);
    const before = snapshot(backend);
    const started = performance.now();
    await closedLoop(processor, callers, total, warmup, latencies);
    const elapsedMs = performance.now() - started;
    return {
      callers,
      events: total,
      elapsedMs,
      eventsPerSec: (total / elapsedMs) * 1000,
      latency: distribution(latencies),
      commits: commitDelta(before, snapshot(backend)),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// 2. addEvents in batches
// ---------------------------------------------------------------------------------------------

export interface BatchResult {
  readonly batchSize: number;
  readonly batches: number;
  readonly events: number;
  readonly elapsedMs: number;
  readonly eventsPerSec: number;
  /** addEvents call to resolution, per batch. */
  readonly latency: Distribution;
  readonly commits: CommitFigures;
}

/** One caller, `addEvents` with `batchSize` events at a time, each batch awaited before the next. */
export function batchScenario(batchSize: number, total: number, warmupBatches: number): Promise<BatchResult> {
  return withBench(async ({ processor, backend }) => {
    processor.destination('sink', { concurrency: 16 }, () => undefined);
    const batch = (b: number): { type: string; payload: ReturnType<typeof orderPayload> }[] =>
      Array.from({ length: batchSize }, (_, k) => ({
        type: 'order.placed',
        payload: orderPayload(b * batchSize + k),
      }));
    for (let b = 0; b < warmupBatches; b += 1) await processor.addEvents(batch(b));
    const batches = Math.ceil(total / batchSize);
    const inputs = Array.from({ length: batches }, (_, b) => batch(warmupBatches + b));
    const latencies = new Float64Array(batches);
    const before = snapshot(backend);
    const started = performance.now();
    for (let b = 0; b < batches; b += 1) {
      const t = performance.now();
      await processor.addEvents(inputs[b] ?? []);
      latencies[b] = performance.now() - t;
    }
    const elapsedMs = performance.now() - started;
    const events = batches * batchSize;
    return {
      batchSize,
      batches,
      events,
      elapsedMs,
      eventsPerSec: (events / elapsedMs) * 1000,
      latency: distribution(latencies),
      commits: commitDelta(before, snapshot(backend)),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// 3. End to end
// ---------------------------------------------------------------------------------------------

export interface EndToEndResult {
  readonly events: number;
  readonly producers: number;
  readonly concurrency: number;
  /** First addEvent to the handler having been called for every event. */
  readonly elapsedMs: number;
  readonly eventsPerSec: number;
  /** First addEvent to the last addEvent resolving. */
  readonly ingestMs: number;
  /** First addEvent to the last success being recorded in the store. */
  readonly settledMs: number;
  readonly handlerCalls: number;
  readonly commits: CommitFigures;
}

type PhasedPayload = { phase: 'warmup' | 'measure'; i: number };

/** A started processor, one destination with a no-op async handler; producers add, the handler counts. */
export function endToEndScenario(
  total: number,
  producers: number,
  concurrency: number,
  warmup: number,
  timeoutMs: number,
): Promise<EndToEndResult> {
  return withBench(async ({ processor, backend }) => {
    const counts = { warmup: 0, measure: 0, succeeded: 0 };
    const warmedUp = signal();
    const allHandled = signal();
    const allSettled = signal();
    processor.destination<PhasedPayload>('sink', { concurrency }, async (event) => {
      const { phase } = event.payload;
      counts[phase] += 1;
      if (phase === 'warmup' && counts.warmup === warmup) warmedUp.resolve();
      if (phase === 'measure' && counts.measure === total) allHandled.resolve();
    });
    processor.on('delivery:succeeded', () => {
      counts.succeeded += 1;
      if (counts.succeeded === warmup + total) allSettled.resolve();
    });
    await processor.start();

    const produce = async (phase: PhasedPayload['phase'], count: number): Promise<void> => {
      let next = 0;
      const worker = async (): Promise<void> => {
        for (;;) {
          const i = next;
          next += 1;
          if (i >= count) return;
          await processor.addEvent({ type: 'order.placed', payload: { phase, i } });
        }
      };
      await Promise.all(Array.from({ length: producers }, worker));
    };

    await produce('warmup', warmup);
    await within(warmedUp.promise, timeoutMs, 'end-to-end warm-up');

    const before = snapshot(backend);
    const started = performance.now();
    let ingestMs = NaN;
    const ingest = produce('measure', total).then(() => {
      ingestMs = performance.now() - started;
    });
    // If delivery times out below, the producers fail once the processor stops; that is expected.
    ingest.catch(() => undefined);
    await within(allHandled.promise, timeoutMs, `end-to-end delivery of ${total} events`);
    const elapsedMs = performance.now() - started;
    await ingest;
    await within(allSettled.promise, timeoutMs, 'recording every success');
    const settledMs = performance.now() - started;
    return {
      events: total,
      producers,
      concurrency,
      elapsedMs,
      eventsPerSec: (total / elapsedMs) * 1000,
      ingestMs,
      settledMs,
      handlerCalls: counts.measure,
      commits: commitDelta(before, snapshot(backend)),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// 4. Latency at a fixed offered rate
// ---------------------------------------------------------------------------------------------

export interface LatencyResult {
  readonly ratePerSec: number;
  readonly events: number;
  readonly concurrency: number;
  readonly offeredMs: number;
  /** performance.now() just before addEvent -> performance.now() at handler start. The target figure. */
  readonly sendToHandler: Distribution;
  /** Scheduled send time -> handler start: adds the time the sender itself was held up. */
  readonly dueToHandler: Distribution;
  /** How late each send was against its schedule (a blocked event loop shows here). */
  readonly sendLag: Distribution;
  /** addEvent call -> its promise resolving (the durable commit). */
  readonly commit: Distribution;
  /** Event-loop delay sampled every 1 ms during the measured part (ms). */
  readonly loopDelay: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly commits: CommitFigures;
  readonly errors: number;
}

type TimedPayload = { i: number; sentAt: number; dueAt: number };

/**
 * Open loop: one `addEvent` every `1000 / ratePerSec` ms for `durationMs`, never waiting for
 * earlier ones. The first `warmupMs` of events run the same way and are left out of the figures.
 */
export function latencyScenario(
  ratePerSec: number,
  durationMs: number,
  warmupMs: number,
  concurrency: number,
  timeoutMs: number,
): Promise<LatencyResult> {
  return withBench(async ({ processor, backend }) => {
    const intervalMs = 1000 / ratePerSec;
    const warmup = Math.round(warmupMs / intervalMs);
    const measured = Math.round(durationMs / intervalMs);
    const total = warmup + measured;
    const sendToHandler = new Float64Array(measured);
    const dueToHandler = new Float64Array(measured);
    const sendLag = new Float64Array(measured);
    const commit = new Float64Array(measured);
    let handled = 0;
    let errors = 0;
    const allHandled = signal();

    processor.destination<TimedPayload>('sink', { concurrency }, async (event) => {
      const now = performance.now();
      const { i, sentAt, dueAt } = event.payload;
      if (i >= warmup) {
        sendToHandler[i - warmup] = now - sentAt;
        dueToHandler[i - warmup] = now - dueAt;
      }
      handled += 1;
      if (handled === total) allHandled.resolve();
    });
    await processor.start();

    const loop = monitorEventLoopDelay({ resolution: 1 });
    let before: CommitFigures = snapshot(backend);
    const pending: Promise<unknown>[] = [];
    const started = performance.now();
    await paced(total, intervalMs, (i, dueAt) => {
      if (i === warmup) {
        loop.enable();
        before = snapshot(backend);
      }
      const sentAt = performance.now();
      if (i >= warmup) sendLag[i - warmup] = sentAt - dueAt;
      pending.push(
        processor.addEvent({ type: 'order.placed', payload: { i, sentAt, dueAt } }).then(
          () => {
            if (i >= warmup) commit[i - warmup] = performance.now() - sentAt;
          },
          () => {
            errors += 1;
          },
        ),
      );
    });
    const offeredMs = performance.now() - started;
    await Promise.all(pending);
    await within(allHandled.promise, timeoutMs, `delivery of ${total} paced events`);
    loop.disable();
    const commits = commitDelta(before, snapshot(backend));
    return {
      ratePerSec,
      events: measured,
      concurrency,
      offeredMs,
      sendToHandler: distribution(sendToHandler),
      dueToHandler: distribution(dueToHandler),
      sendLag: distribution(sendLag),
      commit: distribution(commit),
      loopDelay: {
        p50: loop.percentile(50) / 1e6,
        p99: loop.percentile(99) / 1e6,
        max: loop.max / 1e6,
      },
      commits,
      errors,
    };
  });
}
