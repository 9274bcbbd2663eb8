import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { waitFor } from '../../test/support/wait-for.js';
import type { Backend, ClaimRequest } from '../backends/backend.js';
import { SqliteBackend } from '../backends/sqlite/sqlite-backend.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import { ManualClock } from '../clock.js';
import { RetryAfterError } from '../errors.js';
import { settle } from '../../test/support/wait-for.js';

/** A real SQLite backend whose claims answer late, as under a slow disk or a busy lock. */
function slowClaims(backend: SqliteBackend, delayMs: number): Backend {
  return new Proxy(backend, {
    get(target, property, receiver) {
      if (property === 'claim') {
        return async (request: ClaimRequest) => {
          const result = await target.claim(request);
          await new Promise((resolve) => setTimeout(resolve, delayMs));
          return result;
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('DestinationRunner', () => {
  const dir = tempDir('steadfast-runner-');
  let processor: ReliableEventProcessor | null = null;

  afterEach(async () => {
    await processor?.stop();
    dir.remove();
  });

  it('claims a retry that fell due while its claim was still on the way', async () => {
    const backend = slowClaims(new SqliteBackend({ path: join(dir.path, 'store.db') }), 30);
    processor = createProcessor({ backend, logger: false });
    let calls = 0;
    processor.destination('a', {}, async () => {
      calls += 1;
      if (calls === 1) throw new RetryAfterError(10);
    });
    await processor.start();
    await processor.addEvent({ type: 't', payload: {} });
    await waitFor(async () => (await processor!.getMetrics()).queueDepth === 0, { timeoutMs: 5000 });
    expect(calls).toBe(2);
  });

  it('claims again when the breaker recovered while a claim sized to nothing was on its way', async () => {
    const clock = new ManualClock();
    const store = new SqliteBackend({ path: join(dir.path, 'recovered.db'), clock });
    let down = true;
    // The first claim sized to nothing (the breaker had just opened) takes longer than the
    // breaker's recovery timeout: by the time it answers, the breaker lets probes through. The
    // commit notifications of that moment are held back, so only the runner's own bookkeeping
    // can bring it to claim again.
    let stretched = false;
    let muted = false;
    const backend = new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'onWork') {
          return (listener: Parameters<Backend['onWork']>[0]) =>
            target.onWork((destinations) => {
              if (!muted) listener(destinations);
            });
        }
        if (property === 'claim') {
          return async (request: ClaimRequest) => {
            let size = -1;
            const { limit } = request;
            const result = await target.claim({
              ...request,
              limit: () => (size = typeof limit === 'function' ? limit() : limit),
            });
            if (size === 0 && !stretched) {
              stretched = true;
              down = false;
              clock.advance(2000);
            }
            muted = false;
            return result;
          };
        }
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as Backend;
    processor = createProcessor({ backend, logger: false, clock });
    let calls = 0;
    processor.destination(
      'a',
      {
        concurrency: 2,
        retry: { baseDelayMs: 10, jitter: false },
        circuitBreaker: { failureThreshold: 2, recoveryTimeoutMs: 1000 },
      },
      async () => {
        calls += 1;
        if (calls === 2) muted = true;
        if (down) throw new Error('connection refused');
      },
    );
    await processor.start();
    // Both attempts fail in one turn: the first failure frees a slot and asks for a claim, the
    // second opens the breaker before that claim executes, so it is sized to nothing.
    await processor.addEvents([
      { type: 't', payload: { n: 1 } },
      { type: 't', payload: { n: 2 } },
    ]);
    await waitFor(async () => (await processor!.getMetrics()).succeeded === 2, { timeoutMs: 5000 });
    expect(stretched).toBe(true);
    expect(calls).toBe(4);
  });

  it('claims nothing while the breaker is open and does not charge a failed probe to the delivery', async () => {
    const clock = new ManualClock();
    processor = createProcessor({
      storage: { kind: 'sqlite', path: join(dir.path, 'breaker.db') },
      logger: false,
      clock,
    });
    let down = true;
    const calls: number[] = [];
    processor.destination(
      'fragile',
      {
        retry: { baseDelayMs: 100, jitter: false, maxAttempts: 2 },
        circuitBreaker: { failureThreshold: 1, recoveryTimeoutMs: 1000 },
      },
      async (_event, ctx) => {
        calls.push(ctx.attempt);
        if (down) throw new Error('unavailable');
      },
    );
    await processor.start();
    const { eventId } = await processor.addEvent({ type: 't', payload: {} });
    const delivery = async () => (await processor!.getEvent(eventId))!.deliveries[0]!;
    await waitFor(async () => (await delivery()).state === 'retrying');

    // The retry falls due after 100 ms, but the breaker stays open for 1000 ms: no attempt.
    clock.advance(500);
    await settle();
    expect(calls).toEqual([1]);

    clock.advance(500); // half-open: one probe, which fails and re-opens the breaker
    await waitFor(() => calls.length === 2);
    await waitFor(async () => (await delivery()).history.length === 2);
    expect(await delivery()).toMatchObject({ state: 'retrying', attempts: 1 });

    down = false;
    clock.advance(1000); // the next probe succeeds and closes the breaker
    await waitFor(async () => (await delivery()).state === 'succeeded');
    const done = await delivery();
    expect(done.history.map((a) => a.outcome)).toEqual(['failed', 'probe_failed', 'succeeded']);
    expect(calls).toEqual([1, 2, 2]);
    expect((await processor.deadLetters.stats()).count).toBe(0);
  });
});
