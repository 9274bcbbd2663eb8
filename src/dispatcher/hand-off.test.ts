import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { waitFor } from '../../test/support/wait-for.js';
import type { Backend, ClaimRequest, ClaimResult } from '../backends/backend.js';
import { SqliteBackend } from '../backends/sqlite/sqlite-backend.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';

/** A real SQLite backend that counts the claims made through it. */
function countingClaims(backend: SqliteBackend): { backend: Backend; claims: () => number } {
  let claims = 0;
  const counted = new Proxy(backend, {
    get(target, property, receiver) {
      if (property === 'claim') {
        return (request: ClaimRequest): Promise<ClaimResult> => {
          claims += 1;
          return target.claim(request);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { backend: counted, claims: () => claims };
}

/** A handler that holds every call until released, recording the order and the peak concurrency. */
function gatedHandler(): {
  handler: (event: { payload: unknown }) => Promise<void>;
  seen: unknown[];
  running: () => number;
  peak: () => number;
  releaseAll: () => void;
} {
  const seen: unknown[] = [];
  const waiting: (() => void)[] = [];
  let running = 0;
  let peak = 0;
  let open = false;
  return {
    handler: async (event) => {
      seen.push(event.payload);
      running += 1;
      peak = Math.max(peak, running);
      if (!open) await new Promise<void>((resolve) => waiting.push(resolve));
      running -= 1;
    },
    seen,
    running: () => running,
    peak: () => peak,
    releaseAll: () => {
      open = true;
      for (const release of waiting.splice(0)) release();
    },
  };
}

describe('direct hand-off to this process’s runners', () => {
  const dir = tempDir('steadfast-hand-off-');
  let processor: ReliableEventProcessor | null = null;

  afterEach(async () => {
    await processor?.stop();
    processor = null;
    dir.remove();
  });

  it('runs events published while the runner has caught up without claiming them', async () => {
    const { backend, claims } = countingClaims(new SqliteBackend({ path: join(dir.path, 'idle.db') }));
    processor = createProcessor({ backend, logger: false });
    const delivered: unknown[] = [];
    processor.destination('sink', { concurrency: 4 }, async (event) => {
      delivered.push(event.payload);
    });
    await processor.start();
    // Once its start-up claims have found the queue empty, the runner has caught up.
    await processor.addEvent({ type: 't', payload: { warmUp: true } });
    await waitFor(() => delivered.length === 1);
    delivered.length = 0;
    const before = claims();
    for (let i = 0; i < 20; i++) {
      await processor.addEvent({ type: 't', payload: { i } });
      await waitFor(() => delivered.length === i + 1);
    }
    expect(claims() - before).toBe(0);
    expect(delivered).toEqual(Array.from({ length: 20 }, (_, i) => ({ i })));
    const { eventId } = await processor.addEvent({ type: 't', payload: { i: 20 } });
    await waitFor(async () => (await processor!.getEvent(eventId))?.deliveries[0]?.state === 'succeeded');
    const stored = await processor.getEvent(eventId);
    expect(stored?.deliveries).toHaveLength(1);
    expect(stored?.deliveries[0]?.attempts).toBe(1);
    expect(claims() - before).toBe(0);
  });

  it('never runs more attempts at once than the destination’s concurrency', async () => {
    const { backend } = countingClaims(new SqliteBackend({ path: join(dir.path, 'limit.db') }));
    processor = createProcessor({ backend, logger: false });
    const gate = gatedHandler();
    processor.destination('sink', { concurrency: 2 }, gate.handler);
    await processor.start();
    await waitFor(async () => (await processor!.getMetrics()).queueDepth === 0);
    // Published in one group commit: two are handed over, the rest wait in the queue.
    await Promise.all(
      Array.from({ length: 6 }, (_, i) => processor!.addEvent({ type: 't', payload: { i } })),
    );
    await waitFor(() => gate.running() === 2);
    // More single events while both slots are busy: queued, not handed over.
    await processor.addEvent({ type: 't', payload: { i: 6 } });
    expect(gate.running()).toBe(2);
    gate.releaseAll();
    await waitFor(() => gate.seen.length === 7);
    await waitFor(async () => (await processor!.getMetrics()).queueDepth === 0);
    expect(gate.peak()).toBe(2);
    expect(new Set(gate.seen.map((p) => JSON.stringify(p))).size).toBe(7);
  });

  it('keeps per-key order on an ordered destination', async () => {
    const { backend } = countingClaims(new SqliteBackend({ path: join(dir.path, 'ordered.db') }));
    processor = createProcessor({ backend, logger: false });
    const gate = gatedHandler();
    processor.destination('sink', { concurrency: 4, ordered: true }, gate.handler);
    await processor.start();
    await waitFor(async () => (await processor!.getMetrics()).queueDepth === 0);
    for (let i = 0; i < 5; i++) await processor.addEvent({ type: 't', key: 'k', payload: { i } });
    // The first was handed over; the others wait for it, whatever free slots there are.
    await waitFor(() => gate.running() === 1);
    expect(gate.seen).toEqual([{ i: 0 }]);
    gate.releaseAll();
    await waitFor(() => gate.seen.length === 5);
    expect(gate.seen).toEqual(Array.from({ length: 5 }, (_, i) => ({ i })));
    expect(gate.peak()).toBe(1);
  });

  it('stores a handed-over delivery leased, and hands it back on stop for another process', async () => {
    const path = join(dir.path, 'lease.db');
    const first = new SqliteBackend({ path });
    processor = createProcessor({ backend: first, logger: false });
    const gate = gatedHandler();
    processor.destination('sink', { concurrency: 1, leaseMs: 200 }, gate.handler);
    await processor.start();
    await waitFor(async () => (await processor!.getMetrics()).queueDepth === 0);
    const { eventId } = await processor.addEvent({ type: 't', payload: { i: 0 } });
    await waitFor(() => gate.running() === 1);
    const record = await processor.getEvent(eventId);
    expect(record?.deliveries[0]?.state).toBe('processing');
    // The first process stops before the attempt ends: the delivery goes back to the queue and
    // a second process runs it.
    const second = new SqliteBackend({ path });
    const other = createProcessor({ backend: second, logger: false });
    const delivered: unknown[] = [];
    other.destination('sink', { concurrency: 1, leaseMs: 200 }, async (event) => {
      delivered.push(event.payload);
    });
    await processor.stop({ timeoutMs: 0 });
    processor = other;
    await other.start();
    await waitFor(() => delivered.length === 1, { timeoutMs: 10_000 });
    expect(delivered).toEqual([{ i: 0 }]);
    gate.releaseAll();
  });
});
