import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { waitFor } from '../../test/support/wait-for.js';
import type { DeadLetterStats, QueueStats } from '../backends/backend.js';
import { SqliteBackend } from '../backends/sqlite/sqlite-backend.js';
import { ManualClock, systemClock } from '../clock.js';
import type { ProcessorOptions } from '../core/options.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import { ProcessorEvents } from '../core/processor-events.js';
import { PermanentError } from '../errors.js';
import { AlertMonitor, ALERT_DEFAULTS, type Alert, type AlertSource } from './alerts.js';

const HOUR = 3_600_000;

const EMPTY_STATS: { queue: QueueStats; deadLetters: DeadLetterStats } = {
  queue: { depth: 0, byDestination: {} },
  deadLetters: {
    count: 0,
    oldestAgeMs: null,
    oldestDeadAt: null,
    byDestination: {},
    byType: {},
    topErrors: [],
  },
};

/** An in-memory event bus (the project's own) and fixed store figures: for event-driven alerts. */
function fakeSource(getStats: AlertSource['getStats'] = async () => EMPTY_STATS): {
  source: AlertSource;
  events: ProcessorEvents;
} {
  const events = new ProcessorEvents();
  return { events, source: { on: events.on.bind(events), getStats } };
}

const leaseRecovered = (deliveryId: string, leaseExpiries: number) => ({
  deliveryId,
  destination: 'work',
  eventId: `evt-${deliveryId}`,
  type: 't',
  correlationId: 'c',
  attempt: leaseExpiries + 1,
  leaseExpiries,
});

describe('AlertMonitor', () => {
  let dir: ReturnType<typeof tempDir>;
  const processors: ReliableEventProcessor[] = [];
  const monitors: AlertMonitor[] = [];

  const processor = (options: ProcessorOptions = {}): ReliableEventProcessor => {
    const p = createProcessor({
      storage: { kind: 'sqlite', path: join(dir.path, 's.db') },
      logger: false,
      ...options,
    });
    processors.push(p);
    return p;
  };
  const monitor = (
    ...args: ConstructorParameters<typeof AlertMonitor>
  ): { m: AlertMonitor; alerts: Alert[] } => {
    const m = new AlertMonitor(...args);
    monitors.push(m);
    const alerts: Alert[] = [];
    m.onAlert((a) => alerts.push(a));
    return { m, alerts };
  };

  beforeEach(() => {
    dir = tempDir('steadfast-alerts-');
  });

  afterEach(async () => {
    for (const m of monitors.splice(0)) m.stop();
    for (const p of processors.splice(0)) await p.stop();
    dir.remove();
  });

  it('raises dead_letters_over_threshold once per crossing and resolves it once', async () => {
    const p = processor();
    p.destination('billing', {}, () => {
      throw new PermanentError('card declined');
    });
    await p.start();
    const { m, alerts } = monitor(p, { clock: systemClock });
    const deadCount = async () => (await p.deadLetters.stats()).count;

    await p.addEvents(Array.from({ length: 9 }, () => ({ type: 'order.paid', payload: {} })));
    await waitFor(async () => (await deadCount()) === 9);
    expect(await m.check()).toEqual([]);

    await p.addEvent({ type: 'order.paid', payload: {} });
    await waitFor(async () => (await deadCount()) === 10);
    const raised = await m.check();
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({
      type: 'dead_letters_over_threshold',
      severity: 'warning',
      figures: { count: 10, threshold: 10 },
    });
    expect(raised[0]?.resolved).toBeUndefined();
    expect(Number.isNaN(Date.parse(raised[0]?.at ?? ''))).toBe(false);

    await p.addEvents([
      { type: 'order.paid', payload: {} },
      { type: 'order.paid', payload: {} },
    ]);
    await waitFor(async () => (await deadCount()) === 12);
    expect(await m.check()).toEqual([]);
    expect(await m.check()).toEqual([]);
    expect(alerts).toHaveLength(1);

    await p.deadLetters.delete({});
    const resolved = await m.check();
    expect(resolved).toEqual([
      expect.objectContaining({
        type: 'dead_letters_over_threshold',
        resolved: true,
        figures: expect.objectContaining({ count: 0 }),
      }),
    ]);
    expect(await m.check()).toEqual([]);
    expect(alerts.map((a) => [a.type, a.resolved ?? false])).toEqual([
      ['dead_letters_over_threshold', false],
      ['dead_letters_over_threshold', true],
    ]);
  });

  it('raises dead_letter_too_old once when the oldest dead letter passes 24 h, from a periodic check', async () => {
    const clock = new ManualClock();
    const p = processor({ clock });
    p.destination('billing', {}, () => {
      throw new PermanentError('card declined');
    });
    await p.start();
    let checks = 0;
    const source: AlertSource = {
      on: p.on.bind(p),
      getStats: () => {
        checks += 1;
        return p.getStats();
      },
    };
    const { m, alerts } = monitor(source, { clock });
    m.start();
    await p.addEvent({ type: 'order.paid', payload: {} });
    await waitFor(async () => (await p.deadLetters.stats()).count === 1);
    expect(await m.check()).toEqual([]);

    clock.advance(24 * HOUR);
    await waitFor(() => alerts.length === 1);
    expect(alerts[0]).toMatchObject({
      type: 'dead_letter_too_old',
      severity: 'warning',
      figures: { threshold: ALERT_DEFAULTS.deadLetterAgeMs, count: 1 },
    });
    expect(alerts[0]?.figures.oldestAgeMs).toBeGreaterThanOrEqual(24 * HOUR);

    // Still too old on the next periodic check: nothing new.
    const before = checks;
    clock.advance(ALERT_DEFAULTS.checkIntervalMs);
    await waitFor(() => checks > before);
    expect(await m.check()).toEqual([]);
    expect(alerts).toHaveLength(1);
  });

  it('raises backlog_over_threshold while deliveries wait, and resolves it once they are delivered', async () => {
    const producer = processor();
    producer.destination('slow', {}, () => undefined); // declared, never started here
    const { m, alerts } = monitor(producer, { clock: systemClock, thresholds: { backlog: 5 } });

    await producer.addEvents(Array.from({ length: 4 }, () => ({ type: 't', payload: {} })));
    expect(await m.check()).toEqual([]);
    await producer.addEvents([
      { type: 't', payload: {} },
      { type: 't', payload: {} },
    ]);
    expect(await m.check()).toEqual([
      expect.objectContaining({
        type: 'backlog_over_threshold',
        severity: 'warning',
        figures: { depth: 6, threshold: 5, oldestPendingAgeMs: expect.any(Number) as number },
      }),
    ]);
    expect(await m.check()).toEqual([]);

    let delivered = 0;
    const worker = processor();
    worker.destination('slow', {}, () => void (delivered += 1));
    await worker.start();
    await waitFor(async () => (await producer.getStats()).queue.depth === 0);
    expect(delivered).toBe(6);
    expect(await m.check()).toEqual([
      expect.objectContaining({
        type: 'backlog_over_threshold',
        resolved: true,
        figures: expect.objectContaining({ depth: 0 }),
      }),
    ]);
    expect(alerts).toHaveLength(2);
  });

  it('raises circuit_opened and circuit_closed once per crossing, not on a re-open after a failed probe', async () => {
    const p = processor();
    let failing = true;
    p.destination(
      'flaky',
      {
        circuitBreaker: { failureThreshold: 1, recoveryTimeoutMs: 50 },
        retry: { baseDelayMs: 10, maxDelayMs: 20, jitter: false, maxAttempts: 1000 },
      },
      () => {
        if (failing) throw new Error('service unavailable');
      },
    );
    const transitions: string[] = [];
    p.on('circuit:state-changed', (e) => transitions.push(`${e.from}>${e.to}`));
    const { m, alerts } = monitor(p, { clock: systemClock });
    m.start();
    await p.start();
    const types = () => alerts.map((a) => a.type);

    await p.addEvent({ type: 't', payload: {} });
    await waitFor(() => transitions.includes('half-open>open'), { message: 'a failed probe re-opens' });
    expect(types()).toEqual(['circuit_opened']);
    expect(alerts[0]).toMatchObject({
      severity: 'critical',
      destination: 'flaky',
      figures: { destination: 'flaky', trips: 1, from: 'closed', to: 'open' },
    });

    failing = false;
    await waitFor(() => alerts.length === 2);
    expect(types()).toEqual(['circuit_opened', 'circuit_closed']);
    expect(alerts[1]).toMatchObject({ severity: 'info', destination: 'flaky', figures: { to: 'closed' } });

    failing = true;
    await p.addEvent({ type: 't', payload: {} });
    await waitFor(() => alerts.length === 3);
    failing = false;
    await waitFor(() => alerts.length === 4);
    expect(types()).toEqual(['circuit_opened', 'circuit_closed', 'circuit_opened', 'circuit_closed']);
  });

  it('raises delivery_stuck once per delivery whose lease expired often enough (event bus)', () => {
    const clock = new ManualClock();
    const { source, events } = fakeSource();
    const { m, alerts } = monitor(source, { clock });
    m.start();
    expect(clock.pendingTimers).toBe(1);

    events.emit('delivery:lease-recovered', leaseRecovered('d1', 1));
    expect(alerts).toEqual([]);
    events.emit('delivery:lease-recovered', leaseRecovered('d1', 2));
    events.emit('delivery:lease-recovered', leaseRecovered('d1', 3));
    events.emit('delivery:lease-recovered', leaseRecovered('d2', 5));
    expect(alerts).toEqual([
      {
        type: 'delivery_stuck',
        severity: 'warning',
        message: expect.stringContaining('d1') as string,
        at: new Date(clock.now()).toISOString(),
        destination: 'work',
        figures: {
          deliveryId: 'd1',
          eventId: 'evt-d1',
          destination: 'work',
          attempt: 3,
          leaseExpiries: 2,
          threshold: 2,
        },
      },
      expect.objectContaining({
        type: 'delivery_stuck',
        figures: expect.objectContaining({ deliveryId: 'd2' }),
      }),
    ]);

    // A circuit seen re-opening (half-open → open) without its first opening is not a crossing.
    const circuit = { destination: 'work', reason: 'probe_failed', trips: 2, at: clock.now() };
    events.emit('circuit:state-changed', { ...circuit, from: 'half-open', to: 'open' });
    expect(alerts).toHaveLength(2);

    m.stop();
    expect(clock.pendingTimers).toBe(0);
    events.emit('delivery:lease-recovered', leaseRecovered('d3', 9));
    events.emit('circuit:state-changed', { ...circuit, from: 'closed', to: 'open' });
    expect(alerts).toHaveLength(2);
  });

  it('raises delivery_stuck for a real delivery whose workers died twice', async () => {
    const clock = new ManualClock();
    const path = join(dir.path, 's.db');
    const producer = processor({ clock });
    producer.destination('work', { leaseMs: 5000 }, () => undefined);
    const { eventId } = await producer.addEvent({ type: 't', payload: {} });
    for (let i = 0; i < 2; i++) {
      // A worker claims the delivery and dies: nothing renews or settles its lease.
      const dying = new SqliteBackend({ path, clock, watchIntervalMs: 5 });
      await dying.open();
      const claimed = await dying.claim({
        destination: 'work',
        limit: 1,
        leaseMs: 5000,
        workerId: `doomed-${i}`,
      });
      expect(claimed.deliveries).toHaveLength(1);
      await dying.close();
      clock.advance(5000);
    }

    const survivor = processor({ clock });
    survivor.destination('work', { leaseMs: 5000 }, () => undefined);
    const { m, alerts } = monitor(survivor, { clock });
    m.start();
    await survivor.start();
    await waitFor(() => alerts.length === 1);
    expect(alerts[0]).toMatchObject({
      type: 'delivery_stuck',
      destination: 'work',
      figures: { eventId, leaseExpiries: 2, threshold: 2 },
    });
  });

  it('keeps going when a listener throws or getStats fails; the next periodic check tries again', async () => {
    const clock = new ManualClock();
    let failNext = true;
    let calls = 0;
    const { source, events } = fakeSource(async () => {
      calls += 1;
      if (failNext) {
        failNext = false;
        throw new Error('database is locked');
      }
      return { ...EMPTY_STATS, queue: { depth: 3, byDestination: {} } };
    });
    const errors: unknown[] = [];
    const m = new AlertMonitor(source, { clock, thresholds: { backlog: 1 }, onError: (e) => errors.push(e) });
    monitors.push(m);
    const seen: Alert[] = [];
    m.onAlert(() => {
      throw new Error('listener bug');
    });
    m.onAlert((a) => seen.push(a));
    m.start();

    expect(await m.check()).toEqual([]);
    expect(errors).toEqual([expect.objectContaining({ message: 'database is locked' })]);

    clock.advance(ALERT_DEFAULTS.checkIntervalMs);
    await waitFor(() => seen.length === 1);
    expect(calls).toBe(2);
    expect(seen[0]).toMatchObject({ type: 'backlog_over_threshold', figures: { depth: 3 } });

    events.emit('circuit:state-changed', {
      destination: 'work',
      from: 'closed',
      to: 'open',
      reason: 'consecutive_failures',
      trips: 1,
      at: clock.now(),
    });
    expect(seen.map((a) => a.type)).toEqual(['backlog_over_threshold', 'circuit_opened']);
    expect(errors.slice(1)).toEqual([
      expect.objectContaining({ message: 'listener bug' }),
      expect.objectContaining({ message: 'listener bug' }),
    ]);
    // Still scheduled after all that.
    await waitFor(() => clock.pendingTimers === 1);
  });

  it('rejects a nonsensical threshold', () => {
    const { source } = fakeSource();
    expect(
      () => new AlertMonitor(source, { clock: systemClock, thresholds: { checkIntervalMs: 0 } }),
    ).toThrow(RangeError);
    expect(
      () => new AlertMonitor(source, { clock: systemClock, thresholds: { backlog: Number.NaN } }),
    ).toThrow(/backlog/);
  });
});
