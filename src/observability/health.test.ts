import { describe, expect, it } from 'vitest';
import { assessHealth, QueueTrend, type HealthInputs } from './health.js';

const base: HealthInputs = {
  backendError: null,
  queue: { depth: 0, byDestination: {} },
  deadLetters: {
    count: 0,
    oldestAgeMs: null,
    oldestDeadAt: null,
    byDestination: {},
    byType: {},
    topErrors: [],
  },
  failure: { rate: 0, samples: 100 },
  circuits: { a: 'closed', b: 'none' },
  now: 0,
};

describe('assessHealth', () => {
  it('is healthy with a score of 100 when all is well', () => {
    expect(assessHealth(base)).toMatchObject({ status: 'healthy', score: 100 });
  });

  it('degrades on a growing backlog and remembers depths over its window', () => {
    expect(
      assessHealth({ ...base, queueTrend: { from: 100, to: 2000, overMs: 30_000 } }).components.queue,
    ).toMatchObject({
      status: 'degraded',
      message: '0 unfinished deliveries; oldest none; 100 → 2000 over the last 30 s',
    });
    expect(
      assessHealth({ ...base, queueTrend: { from: 5000, to: 5600, overMs: 30_000 } }).components.queue.status,
    ).toBe('healthy');
    const trend = new QueueTrend(60_000);
    expect(trend.record(0, 10)).toBeNull();
    expect(trend.record(30_000, 50)).toEqual({ from: 10, to: 50, overMs: 30_000 });
    expect(trend.record(90_000, 70)).toEqual({ from: 50, to: 70, overMs: 60_000 });
  });

  it('degrades while some circuit breakers are open and fails when all are', () => {
    expect(assessHealth({ ...base, circuits: { a: 'open', b: 'closed' } }).components.circuits).toMatchObject(
      {
        status: 'degraded',
        value: 1,
        message: 'paused (breaker open or probing): a',
      },
    );
    expect(assessHealth({ ...base, circuits: { a: 'open', b: 'half-open' } })).toMatchObject({
      status: 'unhealthy',
      score: 80,
    });
  });

  it('degrades on failures, an old backlog, many or old dead letters; fails on an unreachable store', () => {
    expect(assessHealth({ ...base, failure: { rate: 0.2, samples: 50 } })).toMatchObject({
      status: 'degraded',
      score: 90,
    });
    expect(assessHealth({ ...base, failure: { rate: 0.9, samples: 5 } }).status).toBe('healthy');
    const old = { pending: 1, retrying: 0, processing: 0, dead: 0, oldestPendingAgeMs: 20 * 60_000 };
    expect(
      assessHealth({ ...base, queue: { depth: 1, byDestination: { a: old } } }).components.queue.status,
    ).toBe('unhealthy');
    const aged = { ...base.deadLetters!, count: 1, oldestAgeMs: 25 * 3_600_000 };
    expect(assessHealth({ ...base, deadLetters: aged }).components.deadLetters.status).toBe('degraded');
    const down = assessHealth({
      ...base,
      backendError: new Error('disk I/O error'),
      queue: null,
      deadLetters: null,
    });
    expect(down.status).toBe('unhealthy');
    expect(down.components.backend.message).toContain('disk I/O error');
    expect(down.score).toBe(40);
  });
  it('has no dispatch component without a dispatch layer, and the score is unchanged', () => {
    const health = assessHealth(base);
    expect(health.components.dispatch).toBeUndefined();
    expect(health.score).toBe(100);
  });

  it('degrades the whole status while dispatch bypasses Redis', () => {
    const health = assessHealth({
      ...base,
      dispatch: { status: 'degraded', message: 'Redis unreachable: workers claim from the store directly' },
    });
    expect(health.status).toBe('degraded');
    expect(health.components.dispatch).toMatchObject({ status: 'degraded', value: null });
    expect(health.score).toBe(95);
    expect(assessHealth({ ...base, dispatch: { status: 'healthy', message: 'ok' } }).score).toBe(100);
  });
});
