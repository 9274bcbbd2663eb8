import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createProcessor, type ReliableEventProcessor } from '../../src/index.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

describe('a destination outage', () => {
  const dir = tempDir('steadfast-outage-');
  let processor: ReliableEventProcessor | null = null;

  afterEach(async () => {
    await processor?.stop();
    dir.remove();
  });

  it('pauses the destination instead of burning attempts, dead-letters nothing, and drains exactly once after', async () => {
    const EVENTS = 2000;
    processor = createProcessor({ storage: { kind: 'sqlite', path: join(dir.path, 's.db') }, logger: false });
    let down = true;
    let attemptsWhileDown = 0;
    const flakySink = new Map<string, number>();
    const healthySink = new Map<string, number>();
    const transitions: string[] = [];
    processor.on('circuit:state-changed', (e) => {
      if (e.destination === 'flaky') transitions.push(`${e.from}->${e.to}`);
    });

    processor.destination(
      'flaky',
      {
        concurrency: 16,
        retry: { baseDelayMs: 20, maxDelayMs: 200, maxAttempts: 5 },
        circuitBreaker: { failureThreshold: 5, recoveryTimeoutMs: 100 },
      },
      async (event) => {
        if (down) {
          attemptsWhileDown += 1;
          throw Object.assign(new Error('service unavailable'), { code: 'ECONNREFUSED' });
        }
        flakySink.set(event.eventId, (flakySink.get(event.eventId) ?? 0) + 1);
      },
    );
    processor.destination('healthy', { concurrency: 16 }, async (event) => {
      healthySink.set(event.eventId, (healthySink.get(event.eventId) ?? 0) + 1);
    });
    await processor.start();

    for (let i = 0; i < EVENTS; i += 500) {
      await processor.addEvents(
        Array.from({ length: 500 }, (_, j) => ({ type: 'order', payload: { n: i + j } })),
      );
    }

    // The outage lasts until the healthy destination has everything and the breaker has
    // re-opened after several failed probes.
    await waitFor(() => healthySink.size === EVENTS, { timeoutMs: 30_000 });
    await waitFor(() => transitions.filter((t) => t === 'half-open->open').length >= 5, {
      timeoutMs: 30_000,
    });
    const spent = attemptsWhileDown;
    expect((await processor.deadLetters.stats()).count).toBe(0);
    // Bounded: the attempts that tripped the breaker (at most one per concurrency slot) plus one
    // probe per recovery timeout — not 5 × 2,000.
    expect(spent).toBeLessThan(100);
    console.log(
      `outage: ${spent} attempts spent on ${EVENTS} queued events, breaker ${transitions.join(', ')}`,
    );

    const recovered = Date.now();
    down = false;
    await waitFor(() => flakySink.size === EVENTS, { timeoutMs: 60_000 });
    await waitFor(async () => (await processor!.getMetrics()).queueDepth === 0);
    console.log(`drained ${EVENTS} events in ${Date.now() - recovered} ms after recovery`);

    expect([...flakySink.values()].every((n) => n === 1)).toBe(true);
    expect([...healthySink.values()].every((n) => n === 1)).toBe(true);
    expect((await processor.deadLetters.stats()).count).toBe(0);
    expect(transitions[0]).toBe('closed->open');
    expect(transitions.at(-1)).toBe('half-open->closed');
  }, 120_000);
});
