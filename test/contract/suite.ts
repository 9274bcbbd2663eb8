import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createProcessor,
  ManualClock,
  PermanentError,
  RetryAfterError,
  ValidationError,
  type Backend,
  type Clock,
  type Handler,
  type ProcessorOptions,
  type ReliableEventProcessor,
  type SteadfastEvent,
  systemClock,
} from '../../src/index.js';
import { settle, waitFor } from '../support/wait-for.js';

/** A store for one test: every `open()` is a new backend (a new connection) on the same store. */
export interface BackendHarness {
  open(clock: Clock): Backend;
  destroy(): Promise<void>;
}

export type HarnessFactory = () => Promise<BackendHarness>;

/**
 * The conformance suite: what every backend must do, checked through the public processor API.
 * Run it with a factory for each backend.
 */
export function defineBackendContract(name: string, factory: HarnessFactory): void {
  describe(`backend contract: ${name}`, () => {
    let harness: BackendHarness;
    let processors: ReliableEventProcessor[];

    beforeEach(async () => {
      harness = await factory();
      processors = [];
    });

    afterEach(async () => {
      await Promise.all(processors.map((p) => p.stop({ timeoutMs: 1000 })));
      await harness.destroy();
    });

    function processor(options: ProcessorOptions & { clock?: Clock } = {}): ReliableEventProcessor {
      const clock = options.clock ?? systemClock;
      const p = createProcessor({ logger: false, ...options, backend: harness.open(clock), clock });
      processors.push(p);
      return p;
    }

    /** A processor whose backend counts the claims made through it (a Proxy on the real backend). */
    function countingClaims(): { p: ReliableEventProcessor; claims: () => number } {
      let claims = 0;
      const counted = new Proxy(harness.open(systemClock), {
        get(target, property, receiver) {
          if (property === 'claim') {
            return (request: Parameters<Backend['claim']>[0]) => {
              claims += 1;
              return target.claim(request);
            };
          }
          const value: unknown = Reflect.get(target, property, receiver);
          return typeof value === 'function'
            ? (value as (...args: unknown[]) => unknown).bind(target)
            : value;
        },
      });
      const p = createProcessor({ logger: false, backend: counted, clock: systemClock });
      processors.push(p);
      return { p, claims: () => claims };
    }

    /** A handler that holds every call until released, recording the order and the peak concurrency. */
    function gated() {
      const seen: unknown[] = [];
      const waiting: (() => void)[] = [];
      let running = 0;
      let peak = 0;
      let open = false;
      const handler: Handler = async (event) => {
        seen.push(event.payload);
        running += 1;
        peak = Math.max(peak, running);
        if (!open) await new Promise<void>((resolve) => waiting.push(resolve));
        running -= 1;
      };
      return {
        handler,
        seen,
        running: () => running,
        peak: () => peak,
        releaseAll: () => {
          open = true;
          for (const release of waiting.splice(0)) release();
        },
      };
    }

    async function deliveryOf(p: ReliableEventProcessor, eventId: string, destination: string) {
      const record = await p.getEvent(eventId);
      const delivery = record?.deliveries.find((d) => d.destination === destination);
      if (!delivery) throw new Error(`no delivery of ${eventId} to ${destination}`);
      return delivery;
    }

    /**
     * Nothing is left to do: the store holds no unfinished delivery, and this process has no
     * attempt in flight, so every outcome it wrote has also been counted in its metrics (they
     * are counted once the store has answered, which may be after another reader saw the write).
     */
    function drained(p: ReliableEventProcessor): () => Promise<boolean> {
      return async () => {
        const metrics = await p.getMetrics();
        return metrics.queueDepth === 0 && metrics.activeAttempts === 0;
      };
    }

    it('handles 10,000 events exactly once per destination when nothing fails', async () => {
      const p = processor();
      const seen = { a: new Map<string, number>(), b: new Map<string, number>() };
      const count =
        (map: Map<string, number>): Handler =>
        async (event) => {
          map.set(event.eventId, (map.get(event.eventId) ?? 0) + 1);
        };
      p.destination('a', { concurrency: 16 }, count(seen.a));
      p.destination('b', { concurrency: 4 }, count(seen.b));
      await p.start();
      const total = 10_000;
      const ids: string[] = [];
      for (let i = 0; i < total; i += 500) {
        const batch = Array.from({ length: 500 }, (_, j) => ({ type: 'bulk', payload: { n: i + j } }));
        const results = await p.addEvents(batch);
        ids.push(...results.map((r) => r.eventId));
      }
      await waitFor(() => seen.a.size === total && seen.b.size === total, { timeoutMs: 60_000 });
      await waitFor(drained(p), { message: 'queue drained and no attempt in flight' });
      for (const map of [seen.a, seen.b]) {
        expect([...map.values()].every((n) => n === 1)).toBe(true);
        expect(ids.every((id) => map.has(id))).toBe(true);
      }
      expect((await p.getMetrics()).succeeded).toBe(2 * total);
    });

    it('answers a repeated eventId as a duplicate and creates no deliveries', async () => {
      const p = processor();
      const calls: string[] = [];
      p.destination('a', {}, async (e) => void calls.push(e.eventId));
      await p.start();
      const first = await p.addEvent({ eventId: 'order-1', type: 'order.created', payload: { n: 1 } });
      const again = await p.addEvent({ eventId: 'order-1', type: 'order.created', payload: { n: 2 } });
      const batch = await p.addEvents([
        { eventId: 'order-2', type: 'order.created', payload: {} },
        { eventId: 'order-2', type: 'order.created', payload: {} },
      ]);
      expect(first).toMatchObject({ eventId: 'order-1', duplicate: false, destinations: ['a'] });
      expect(again).toMatchObject({ eventId: 'order-1', duplicate: true, destinations: [] });
      expect(batch.map((r) => r.duplicate)).toEqual([false, true]);
      await waitFor(() => calls.length === 2);
      await settle();
      expect(calls.sort()).toEqual(['order-1', 'order-2']);
      // The store shows it whatever the handlers' timing: one delivery each, the first payload kept.
      const record = await p.getEvent('order-1');
      expect(record?.deliveries).toHaveLength(1);
      expect(record?.event.payload).toEqual({ n: 1 });
      expect((await p.getEvent('order-2'))?.deliveries).toHaveLength(1);
    });

    it('accepts an eventId again once the dedup window has passed', async () => {
      const clock = new ManualClock();
      const p = processor({ clock, dedupWindowMs: 60_000 });
      expect((await p.addEvent({ eventId: 'x', type: 't', payload: 1 })).duplicate).toBe(false);
      clock.advance(59_999);
      expect((await p.addEvent({ eventId: 'x', type: 't', payload: 2 })).duplicate).toBe(true);
      clock.advance(2);
      expect((await p.addEvent({ eventId: 'x', type: 't', payload: 3 })).duplicate).toBe(false);
      expect((await p.getEvent('x'))?.event.payload).toBe(3);
    });

    it('rejects an invalid event with a ValidationError naming the field, storing nothing', async () => {
      const p = processor();
      p.destination('a', {}, async () => undefined);
      const bad: unknown[] = [
        { type: '', payload: {} },
        { type: 'x'.repeat(201), payload: {} },
        { type: 't' },
        { type: 't', payload: {}, eventId: 'y'.repeat(201) },
        { type: 't', payload: {}, occurredAt: 'yesterday' },
        { type: 't', payload: {}, surprise: true },
        { type: 't', payload: { f: () => 1 } },
      ];
      const fields = ['type', 'type', 'payload', 'eventId', 'occurredAt', '(event)', 'payload'];
      for (const [i, event] of bad.entries()) {
        const error = await p.addEvent(event as never).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ValidationError);
        expect((error as ValidationError).code).toBe('validation_error');
        expect((error as ValidationError).field).toBe(fields[i]);
      }
      const batch = await p
        .addEvents([{ eventId: 'good', type: 't', payload: {} }, { type: 't' } as never])
        .catch((e: unknown) => e);
      expect(batch).toBeInstanceOf(ValidationError);
      expect((batch as ValidationError).message).toContain('events[1]');
      expect(await p.getEvent('good')).toBeNull();
      expect((await p.getMetrics()).queueDepth).toBe(0);
    });

    it('retries at the configured times and a restart neither resets nor skips the schedule', async () => {
      const clock = new ManualClock();
      const retry = { strategy: 'exponential' as const, baseDelayMs: 1000, jitter: false, maxAttempts: 4 };
      const starts: number[] = [];
      const failing: Handler = async () => {
        starts.push(clock.now());
        throw new Error('downstream unavailable');
      };
      const first = processor({ clock });
      first.destination('flaky', { retry }, failing);
      await first.start();
      const t0 = clock.now();
      const { eventId } = await first.addEvent({ type: 'job', payload: {} });
      await waitFor(async () => (await deliveryOf(first, eventId, 'flaky')).state === 'retrying');
      expect((await deliveryOf(first, eventId, 'flaky')).nextAttemptAt).toBe(t0 + 1000);
      await first.stop();

      // A new process on the same store, half-way through the backoff.
      clock.advance(500);
      const second = processor({ clock });
      second.destination('flaky', { retry }, failing);
      await second.start();
      // Time moves in 100 ms steps, each only once nothing is due at the current time: an attempt
      // that fell due has run and its outcome (with the next attempt's time) is recorded. So the
      // handler sees exactly the clock time the attempt was due, however long a round trip takes,
      // and an attempt run early or late still shows up in `starts`.
      const nothingDueNow = async (): Promise<boolean> => {
        const delivery = await deliveryOf(second, eventId, 'flaky');
        if (delivery.state === 'dead') return true;
        return delivery.state === 'retrying' && (delivery.nextAttemptAt ?? 0) > clock.now();
      };
      for (let step = 0; step < 80; step++) {
        await waitFor(nothingDueNow, { message: `the attempt due by ${clock.now() - t0} ms to be done` });
        clock.advance(100);
      }
      await waitFor(async () => (await deliveryOf(second, eventId, 'flaky')).state === 'dead');
      // Attempts at t0, t0+1000, t0+1000+2000, t0+3000+4000: each exactly when due.
      expect(starts).toEqual([t0, t0 + 1000, t0 + 3000, t0 + 7000]);
      const delivery = await deliveryOf(second, eventId, 'flaky');
      expect(delivery.history.map((a) => a.outcome)).toEqual(['failed', 'failed', 'failed', 'failed']);
      expect(delivery.history.map((a) => a.startedAt)).toEqual(starts);
    });

    it('retries at the time a RetryAfterError asks for', async () => {
      const clock = new ManualClock();
      const p = processor({ clock });
      const starts: number[] = [];
      p.destination('a', { retry: { jitter: false } }, async () => {
        starts.push(clock.now());
        if (starts.length === 1) throw new RetryAfterError(12_345, 'rate limited');
      });
      await p.start();
      const t0 = clock.now();
      const { eventId } = await p.addEvent({ type: 't', payload: {} });
      await waitFor(async () => (await deliveryOf(p, eventId, 'a')).state === 'retrying');
      expect((await deliveryOf(p, eventId, 'a')).nextAttemptAt).toBe(t0 + 12_345);
      // The clock stops exactly at the requested time until the retry is done.
      clock.advance(12_345);
      await waitFor(async () => (await deliveryOf(p, eventId, 'a')).state === 'succeeded');
      expect(starts).toEqual([t0, t0 + 12_345]);
    });

    it('dead-letters after one attempt on PermanentError', async () => {
      const p = processor();
      let calls = 0;
      p.destination('a', {}, async () => {
        calls += 1;
        throw new PermanentError('customer does not exist');
      });
      await p.start();
      const { eventId } = await p.addEvent({ type: 't', payload: { id: 7 } });
      await waitFor(async () => (await p.deadLetters.stats()).count === 1);
      expect(calls).toBe(1);
      const [dead] = (await p.deadLetters.list()).items;
      expect(dead).toMatchObject({
        destination: 'a',
        attempts: 1,
        error: { name: 'PermanentError', code: 'permanent_error', message: 'customer does not exist' },
      });
      expect(dead?.event).toMatchObject({ eventId, type: 't', payload: { id: 7 } });
      expect(dead?.firstFailedAt).toBeLessThanOrEqual(dead?.lastFailedAt ?? 0);
      expect(dead?.history).toHaveLength(1);
    });

    it('respects maxAttempts and keeps every attempt with the final error', async () => {
      const p = processor();
      let calls = 0;
      p.destination('a', { retry: { maxAttempts: 3, baseDelayMs: 1, jitter: false } }, async () => {
        calls += 1;
        const error = new Error(`refused #${calls}`) as Error & { code: string };
        error.code = 'ECONNREFUSED';
        throw error;
      });
      await p.start();
      const { eventId } = await p.addEvent({ type: 't', payload: {} });
      await waitFor(async () => (await p.deadLetters.stats()).count === 1);
      await settle();
      expect(calls).toBe(3);
      const dead = await p.deadLetters.get((await deliveryOf(p, eventId, 'a')).deliveryId);
      expect(dead?.attempts).toBe(3);
      expect(dead?.error).toMatchObject({ code: 'ECONNREFUSED', message: 'refused #3' });
      expect(dead?.history.map((a) => a.error?.message)).toEqual(['refused #1', 'refused #2', 'refused #3']);
      expect(dead?.history.every((a) => a.durationMs !== null && a.startedAt > 0)).toBe(true);
    });

    it('does not retry an error whose code is not retryable, and honours a user predicate', async () => {
      const p = processor();
      p.destination('codes', { retry: { baseDelayMs: 1 } }, async () => {
        throw Object.assign(new Error('bad argument'), { code: 'ERR_INVALID_ARG_TYPE' });
      });
      p.destination(
        'predicate',
        { retry: { baseDelayMs: 1, isRetryable: (e) => !(e as Error).message.includes('fatal') } },
        async () => {
          throw new Error('fatal: schema mismatch');
        },
      );
      await p.start();
      await p.addEvent({ type: 't', payload: {} });
      await waitFor(async () => (await p.deadLetters.stats()).count === 2);
      const page = await p.deadLetters.list();
      expect(page.items.map((d) => d.attempts)).toEqual([1, 1]);
    });

    it('runs at most `concurrency` attempts of a destination at once', async () => {
      const p = processor();
      let running = 0;
      let peak = 0;
      const gates: (() => void)[] = [];
      p.destination('limited', { concurrency: 3 }, async () => {
        running += 1;
        peak = Math.max(peak, running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running -= 1;
      });
      await p.start();
      await p.addEvents(Array.from({ length: 12 }, (_, i) => ({ type: 't', payload: { i } })));
      let released = 0;
      while (released < 12) {
        // Every free slot is taken again (as many attempts run as the limit and the work allow)
        // before one is let go; `peak` records any attempt beyond the limit whenever it starts.
        const expected = Math.min(3, 12 - released);
        await waitFor(() => gates.length >= expected, { message: `${expected} attempts running` });
        expect(running).toBeLessThanOrEqual(3);
        gates.shift()!();
        released += 1;
      }
      await waitFor(drained(p), { message: 'queue drained and no attempt in flight' });
      expect(peak).toBe(3);
    });

    it('keeps per-key order while an event fails twice before succeeding', async () => {
      // a1 (head of key A) fails twice. Its retries fall due only when the test moves the clock,
      // so whatever key B does meanwhile is not a race against A's backoff.
      const clock = new ManualClock();
      const p = processor({ clock });
      const log: string[] = [];
      const failuresLeft = new Map([['a1', 2]]);
      p.destination(
        'ordered',
        { ordered: true, concurrency: 8, retry: { baseDelayMs: 1000, jitter: false } },
        async (event: SteadfastEvent) => {
          const id = event.eventId;
          log.push(`start ${id}`);
          await new Promise((resolve) => setTimeout(resolve, 1));
          const left = failuresLeft.get(id) ?? 0;
          if (left > 0) {
            failuresLeft.set(id, left - 1);
            log.push(`fail ${id}`);
            throw new Error('transient');
          }
          log.push(`done ${id}`);
        },
      );
      await p.start();
      const events = [];
      for (let i = 1; i <= 5; i++) {
        events.push({ eventId: `a${i}`, type: 't', key: 'A', payload: {} });
        events.push({ eventId: `b${i}`, type: 't', key: 'B', payload: {} });
      }
      await p.addEvents(events);
      const ofKey = (k: string) => log.filter((l) => new RegExp(` ${k}\\d$`).test(l));
      const doneOf = (k: string) => ofKey(k).filter((l) => l.startsWith('done')).length;
      const inKeyOrder = (k: string) => [1, 2, 3, 4, 5].flatMap((i) => [`start ${k}${i}`, `done ${k}${i}`]);
      const headOfA = () => deliveryOf(p, 'a1', 'ordered');

      // A failing head holds back only its own key: B runs to the end, in order, each event
      // once, while a1 waits for a retry that is not due, and a2..a5 wait behind it.
      await waitFor(async () => doneOf('b') === 5 && (await headOfA()).state === 'retrying', {
        message: 'key B done while a1 waits for its retry',
      });
      expect(ofKey('b')).toEqual(inKeyOrder('b'));
      expect(ofKey('a')).toEqual(['start a1', 'fail a1']);
      expect(await deliveryOf(p, 'a2', 'ordered')).toMatchObject({ state: 'pending', waitingForKey: true });

      // Each retry of a1 runs once it falls due; only after a1 succeeds do a2..a5 follow.
      let head = await headOfA();
      clock.advance(head.nextAttemptAt! - clock.now());
      await waitFor(async () => {
        head = await headOfA();
        return head.state === 'retrying' && head.history.length === 2;
      });
      expect(ofKey('a')).toEqual(['start a1', 'fail a1', 'start a1', 'fail a1']);
      clock.advance(head.nextAttemptAt! - clock.now());
      await waitFor(() => doneOf('a') === 5);
      await waitFor(drained(p), { message: 'queue drained and no attempt in flight' });
      expect(ofKey('b')).toEqual(inKeyOrder('b'));
      expect(ofKey('a')).toEqual([
        'start a1',
        'fail a1',
        'start a1',
        'fail a1',
        'start a1',
        'done a1',
        'start a2',
        'done a2',
        'start a3',
        'done a3',
        'start a4',
        'done a4',
        'start a5',
        'done a5',
      ]);
    });

    it('lets a key go on after a dead letter under "skip" and holds it under "block" until replay', async () => {
      const p = processor();
      const handled: string[] = [];
      const handler: Handler = async (event) => {
        if (
          (event.payload as { poison?: boolean }).poison &&
          !handled.includes(`retry-ok:${event.eventId}`)
        ) {
          throw new PermanentError('poison');
        }
        handled.push(event.eventId);
      };
      p.destination('skip', { ordered: true, types: ['s'] }, handler);
      p.destination('block', { ordered: true, types: ['b'], onDeadLetter: 'block' }, handler);
      await p.start();
      await p.addEvents([
        { eventId: 's1', type: 's', key: 'k', payload: { poison: true } },
        { eventId: 's2', type: 's', key: 'k', payload: {} },
        { eventId: 'b1', type: 'b', key: 'k', payload: { poison: true } },
        { eventId: 'b2', type: 'b', key: 'k', payload: {} },
      ]);
      await waitFor(() => handled.includes('s2'));
      await waitFor(async () => (await p.deadLetters.stats()).count === 2);
      // An event of another key, published after b1 was dead-lettered, gets through: the 'block'
      // destination has claimed since then, and b2 (older) would have come with it had it been due.
      await p.addEvent({ eventId: 'b-other-key', type: 'b', key: 'other', payload: {} });
      await waitFor(() => handled.includes('b-other-key'));
      await settle();
      expect(handled).not.toContain('b2');
      const b2 = await deliveryOf(p, 'b2', 'block');
      expect(b2).toMatchObject({ state: 'pending', waitingForKey: true });

      handled.push('retry-ok:b1');
      const { replayed } = await p.deadLetters.replay({ destination: 'block' });
      expect(replayed).toBe(1);
      await waitFor(() => handled.includes('b2'));
      expect(handled.indexOf('b1')).toBeLessThan(handled.indexOf('b2'));
    });

    it('gives two destinations on one event independent outcomes', async () => {
      const p = processor();
      p.destination('ok', {}, async () => undefined);
      p.destination('broken', {}, async () => {
        throw new PermanentError('rejected');
      });
      p.destination('other-types', { types: ['something.else'] }, async () => undefined);
      await p.start();
      const { eventId, destinations } = await p.addEvent({ type: 'user.created', payload: {} });
      expect([...destinations].sort()).toEqual(['broken', 'ok']);
      await waitFor(async () => (await deliveryOf(p, eventId, 'broken')).state === 'dead');
      await waitFor(async () => (await deliveryOf(p, eventId, 'ok')).state === 'succeeded');
      expect((await p.getEvent(eventId))?.deliveries).toHaveLength(2);
    });

    it('replays a dead letter: delivered again, gone from the dead-letter list', async () => {
      const p = processor();
      let healthy = false;
      const calls: number[] = [];
      p.destination('a', { retry: { maxAttempts: 2, baseDelayMs: 1 } }, async (_e, ctx) => {
        calls.push(ctx.attempt);
        if (!healthy) throw new Error('down');
      });
      await p.start();
      const { eventId } = await p.addEvent({ type: 't', payload: {} });
      await waitFor(async () => (await p.deadLetters.stats()).count === 1);
      const [dead] = (await p.deadLetters.list()).items;
      healthy = true;
      expect(await p.deadLetters.replay([dead!.id])).toMatchObject({ replayed: 1, ids: [dead!.id] });
      await waitFor(async () => (await deliveryOf(p, eventId, 'a')).state === 'succeeded');
      expect(calls).toEqual([1, 2, 1]);
      expect((await p.deadLetters.list()).items).toHaveLength(0);
      expect(await p.deadLetters.get(dead!.id)).toBeNull();
      const delivery = await deliveryOf(p, eventId, 'a');
      expect(delivery.replays).toBe(1);
      expect(delivery.history.map((a) => a.outcome)).toEqual(['failed', 'failed', 'succeeded']);
      expect(await p.deadLetters.replay(['does-not-exist'])).toMatchObject({ replayed: 0 });
    });

    it('lists, filters, pages, counts and deletes dead letters', async () => {
      const p = processor();
      p.destination('x', {}, async () => {
        throw new PermanentError('x failed');
      });
      p.destination('y', { types: ['order'] }, async () => {
        throw new PermanentError('y failed');
      });
      await p.start();
      await p.addEvents([
        ...Array.from({ length: 5 }, (_, i) => ({ type: 'order', key: `k${i % 2}`, payload: { i } })),
        { type: 'user', payload: {} },
      ]);
      await waitFor(async () => (await p.deadLetters.stats()).count === 11);
      const stats = await p.deadLetters.stats();
      expect(stats.byDestination).toEqual({ x: 6, y: 5 });
      expect(stats.byType).toEqual({ order: 10, user: 1 });
      expect(stats.topErrors).toEqual([
        { message: 'x failed', count: 6 },
        { message: 'y failed', count: 5 },
      ]);
      expect(stats.oldestAgeMs).toBeGreaterThanOrEqual(0);

      expect((await p.deadLetters.list({ destination: 'y' })).items).toHaveLength(5);
      expect((await p.deadLetters.list({ type: 'user' })).items).toHaveLength(1);
      expect((await p.deadLetters.list({ key: 'k1', destination: 'x' })).items).toHaveLength(2);
      expect((await p.deadLetters.list({ since: Date.now() + 60_000 })).items).toHaveLength(0);
      expect((await p.deadLetters.list({ until: Date.now() + 60_000 })).items).toHaveLength(11);

      const seen = new Set<string>();
      let cursor: string | undefined;
      do {
        const page = await p.deadLetters.list({ limit: 4, cursor });
        page.items.forEach((d) => seen.add(d.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen.size).toBe(11);

      expect(await p.deadLetters.delete({ destination: 'x' })).toMatchObject({ deleted: 6 });
      expect((await p.deadLetters.stats()).count).toBe(5);
      const [one] = (await p.deadLetters.list({ destination: 'y' })).items;
      const record = await p.getEvent(one!.event.eventId);
      expect(record?.deliveries.find((d) => d.destination === 'x')?.state).toBe('discarded');
    });

    it('fails a hung attempt with handler_timeout and retries it', async () => {
      const p = processor();
      let calls = 0;
      p.destination('slow', { timeoutMs: 50, retry: { baseDelayMs: 1 } }, async (_e, ctx) => {
        calls += 1;
        if (calls === 1) {
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        }
      });
      await p.start();
      const { eventId } = await p.addEvent({ type: 't', payload: {} });
      await waitFor(async () => (await deliveryOf(p, eventId, 'slow')).state === 'succeeded');
      const delivery = await deliveryOf(p, eventId, 'slow');
      expect(delivery.history[0]?.error?.code).toBe('handler_timeout');
      expect(calls).toBe(2);
    });

    it('attempts again after the lease of a dead worker expires, recording the lost attempt', async () => {
      const clock = new ManualClock();
      const producer = processor({ clock });
      producer.destination('work', { leaseMs: 5000 }, async () => undefined);
      const { eventId } = await producer.addEvent({ type: 't', payload: {} });
      // A worker claims the delivery and dies: nothing renews or settles its lease.
      const dying = harness.open(clock);
      await dying.open();
      const claimed = await dying.claim({
        destination: 'work',
        limit: 10,
        leaseMs: 5000,
        workerId: 'doomed',
      });
      expect(claimed.deliveries).toHaveLength(1);
      await dying.close();

      const attempts: string[] = [];
      const survivor = processor({ clock });
      survivor.destination(
        'work',
        { leaseMs: 5000 },
        async (e, ctx) => void attempts.push(`${e.eventId}#${ctx.attempt}`),
      );
      await survivor.start();
      // A later event goes through at once: the survivor has claimed since it started, and left
      // alone the delivery whose lease is still live (had that been due, it would have come too).
      // It is finished before time moves: a lease's worth of time later it would be due again.
      await survivor.addEvent({ eventId: 'later', type: 't', payload: {} });
      await waitFor(
        async () =>
          (await deliveryOf(survivor, 'later', 'work')).state === 'succeeded' &&
          (await survivor.getMetrics()).activeAttempts === 0,
        { message: 'the later event delivered' },
      );
      await settle();
      expect(attempts).toEqual(['later#1']);
      clock.advance(5000);
      await waitFor(() => attempts.length >= 2);
      expect(attempts).toEqual(['later#1', `${eventId}#2`]);
      await waitFor(async () => (await deliveryOf(survivor, eventId, 'work')).state === 'succeeded');
      const delivery = await deliveryOf(survivor, eventId, 'work');
      expect(delivery.history.map((a) => a.outcome)).toEqual(['lease_expired', 'succeeded']);
      expect(delivery.history[0]?.error?.code).toBe('lease_expired');
    });

    it('keeps renewing the lease of a long attempt so no other worker takes it', async () => {
      const clock = new ManualClock();
      const p = processor({ clock });
      let release!: () => void;
      const started: number[] = [];
      p.destination('long', { leaseMs: 3000, timeoutMs: 60_000 }, async (_e, ctx) => {
        started.push(ctx.attempt);
        await new Promise<void>((resolve) => (release = resolve));
      });
      await p.start();
      const { eventId } = await p.addEvent({ type: 't', payload: {} });
      await waitFor(() => started.length === 1);
      const other = harness.open(clock);
      await other.open();
      const leaseEnd = async () => {
        const delivery = await deliveryOf(p, eventId, 'long');
        return delivery.state === 'processing' ? (delivery.nextAttemptAt ?? 0) : 0;
      };
      for (let i = 0; i < 10; i++) {
        // Time moves on only once the processor has pushed the lease past the next step, so the
        // lease can only lapse if the processor fails to renew it, not if a renewal is slow. The
        // settle lets the processor take in the renewal's answer before the clock moves.
        await waitFor(async () => (await leaseEnd()) > clock.now() + 1000, {
          message: `the lease renewed to outlast ${clock.now() + 1000}`,
        });
        await settle();
        clock.advance(1000);
        const stolen = await other.claim({ destination: 'long', limit: 1, leaseMs: 3000, workerId: 'thief' });
        expect(stolen.deliveries).toHaveLength(0);
      }
      await other.close();
      release();
      await waitFor(async () => (await deliveryOf(p, eventId, 'long')).state === 'succeeded');
      expect(started).toEqual([1]);
    });

    it('on stop, releases unfinished attempts without counting them, and another process finishes', async () => {
      const first = processor();
      let entered = 0;
      first.destination('a', { concurrency: 2 }, async (_e, ctx) => {
        entered += 1;
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        throw ctx.signal.reason;
      });
      await first.start();
      const { eventId } = await first.addEvent({ type: 't', payload: {} });
      await waitFor(() => entered === 1);
      await first.stop({ timeoutMs: 20 });
      expect(first.state).toBe('stopped');
      await expect(first.addEvent({ type: 't', payload: {} })).rejects.toMatchObject({
        code: 'processor_closed',
      });

      const second = processor();
      const attempts: number[] = [];
      second.destination('a', {}, async (_e, ctx) => void attempts.push(ctx.attempt));
      const before = await deliveryOf(second, eventId, 'a');
      expect(before).toMatchObject({ state: 'pending', attempts: 0 });
      await second.start();
      await waitFor(async () => (await deliveryOf(second, eventId, 'a')).state === 'succeeded');
      expect(attempts).toEqual([1]);
      expect((await deliveryOf(second, eventId, 'a')).history.map((a) => a.outcome)).toEqual(['succeeded']);
    });

    it('fans out from a process that only ingests to destinations another process declared', async () => {
      const worker = processor();
      const got: string[] = [];
      worker.destination('audit', { types: ['audit.*'] }, async (e) => void got.push(e.eventId));
      await worker.start();
      const producer = processor();
      const result = await producer.addEvent({ eventId: 'from-producer', type: 'audit.login', payload: {} });
      expect(result.destinations).toEqual(['audit']);
      expect((await producer.addEvent({ type: 'other', payload: {} })).destinations).toEqual([]);
      await waitFor(() => got.includes('from-producer'));

      await producer.retireDestination('audit');
      expect((await producer.addEvent({ type: 'audit.logout', payload: {} })).destinations).toEqual([]);
      const listed = await producer.listDestinations();
      expect(listed.find((d) => d.name === 'audit')?.retiredAt).not.toBeNull();
    });

    it('purges delivered events after the retention period, keeping dead letters and the dedup window', async () => {
      const clock = new ManualClock();
      const p = processor({ clock, retentionMs: 1000, dedupWindowMs: 5000 });
      p.destination('ok', { types: ['ok'] }, async () => undefined);
      p.destination('dead', { types: ['dead'] }, async () => {
        throw new PermanentError('no');
      });
      await p.start();
      await p.addEvents([
        { eventId: 'delivered', type: 'ok', payload: {} },
        { eventId: 'failed', type: 'dead', payload: {} },
      ]);
      await waitFor(async () => (await deliveryOf(p, 'delivered', 'ok')).state === 'succeeded');
      await waitFor(async () => (await p.deadLetters.stats()).count === 1);
      expect((await p.cleanup()).events).toBe(0);
      clock.advance(1001);
      expect(await p.cleanup()).toMatchObject({ events: 1 });
      expect(await p.getEvent('delivered')).toBeNull();
      expect(await p.getEvent('failed')).not.toBeNull();
      expect((await p.addEvent({ eventId: 'delivered', type: 'ok', payload: {} })).duplicate).toBe(true);
      clock.advance(5000);
      expect((await p.cleanup()).dedupEntries).toBeGreaterThan(0);
      expect((await p.addEvent({ eventId: 'delivered', type: 'ok', payload: {} })).duplicate).toBe(false);
    });

    it('runs what it publishes itself without claiming it while its runner has caught up', async () => {
      const { p, claims } = countingClaims();
      const delivered: unknown[] = [];
      p.destination('sink', { concurrency: 4 }, async (event) => {
        delivered.push(event.payload);
      });
      await p.start();
      // The runner has caught up once its start-up claims (and, with Redis, the claims that the
      // announcements of queued events bring) have found the queue empty: from then on, an
      // event it runs without a claim shows it.
      for (let warmUps = 0; ; warmUps++) {
        expect(warmUps).toBeLessThan(50);
        const claimsBefore = claims();
        await p.addEvent({ type: 't', payload: { warmUp: warmUps } });
        await waitFor(() => delivered.length === warmUps + 1);
        await waitFor(drained(p));
        if (claims() === claimsBefore) break;
      }
      delivered.length = 0;
      const before = claims();
      for (let i = 0; i < 20; i++) {
        await p.addEvent({ type: 't', payload: { i } });
        await waitFor(() => delivered.length === i + 1);
      }
      await waitFor(drained(p));
      // PostgreSQL, with or without Redis, and SQLite all take the hand-off: no claim was needed.
      expect(claims() - before).toBe(0);
      expect(delivered).toEqual(Array.from({ length: 20 }, (_, i) => ({ i })));
      const { eventId } = await p.addEvent({ type: 't', payload: { i: 20 } });
      await waitFor(async () => (await deliveryOf(p, eventId, 'sink')).state === 'succeeded');
      expect((await deliveryOf(p, eventId, 'sink')).attempts).toBe(1);
    });

    it('never runs more attempts at once than the concurrency, whether handed over or claimed', async () => {
      const { p } = countingClaims();
      const gate = gated();
      p.destination('sink', { concurrency: 2 }, gate.handler);
      await p.start();
      await waitFor(drained(p));
      // Published in one group commit: two are handed over (or claimed), the rest wait in the queue.
      await Promise.all(Array.from({ length: 6 }, (_, i) => p.addEvent({ type: 't', payload: { i } })));
      await waitFor(() => gate.running() === 2);
      await p.addEvent({ type: 't', payload: { i: 6 } });
      await settle();
      expect(gate.running()).toBe(2);
      gate.releaseAll();
      await waitFor(() => gate.seen.length === 7);
      await waitFor(drained(p));
      expect(gate.peak()).toBe(2);
      expect(new Set(gate.seen.map((payload) => JSON.stringify(payload))).size).toBe(7);
    });

    it('keeps per-key order for events published one by one to an idle ordered destination', async () => {
      const { p } = countingClaims();
      const gate = gated();
      p.destination('sink', { concurrency: 4, ordered: true }, gate.handler);
      await p.start();
      await waitFor(drained(p));
      for (let i = 0; i < 5; i++) await p.addEvent({ type: 't', key: 'k', payload: { i } });
      await waitFor(() => gate.running() === 1);
      await settle();
      expect(gate.seen).toEqual([{ i: 0 }]);
      gate.releaseAll();
      await waitFor(() => gate.seen.length === 5);
      expect(gate.seen).toEqual(Array.from({ length: 5 }, (_, i) => ({ i })));
      expect(gate.peak()).toBe(1);
    });

    it('reports metrics and health from real work', async () => {
      const p = processor();
      p.destination('a', { retry: { maxAttempts: 2, baseDelayMs: 1 } }, async (e) => {
        if ((e.payload as { fail?: boolean }).fail) throw new Error('nope');
      });
      await p.start();
      await p.addEvents([
        { type: 't', payload: {} },
        { type: 't', payload: { fail: true } },
      ]);
      await waitFor(async () => (await p.deadLetters.stats()).count === 1);
      await waitFor(drained(p), { message: 'queue drained and no attempt in flight' });
      const metrics = await p.getMetrics();
      expect(metrics).toMatchObject({
        totalEvents: 2,
        succeeded: 1,
        failed: 2,
        retried: 1,
        deadLettered: 1,
        queueDepth: 0,
        deadLetterCount: 1,
      });
      expect(metrics.lastProcessedAt).not.toBeNull();
      expect(metrics.averageProcessingTimeMs).toBeGreaterThanOrEqual(0);
      const health = await p.getHealthStatus();
      expect(health.components.backend.status).toBe('healthy');
      expect(health.score).toBeGreaterThan(0);
      expect(health.components.deadLetters.value).toBe(1);
    });
  });
}
