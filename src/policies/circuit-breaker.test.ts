import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.js';
import { CircuitOpenError, InvalidOptionError, PermanentError } from '../errors.js';
import { CircuitBreaker, type CircuitBreakerOptions, type CircuitStateChange } from './circuit-breaker.js';

function breaker(options: Omit<CircuitBreakerOptions, 'clock'> = {}) {
  const clock = new ManualClock(0);
  const cb = new CircuitBreaker({ clock, ...options });
  const changes: CircuitStateChange[] = [];
  cb.onStateChange((change) => changes.push(change));
  return { clock, cb, changes };
}

/** One call through the acquire/record API. */
function call(cb: CircuitBreaker, ok: boolean): boolean {
  if (!cb.tryAcquire()) return false;
  if (ok) cb.recordSuccess();
  else cb.recordFailure();
  return true;
}

const boom = () => Promise.reject(new Error('boom'));

describe('CircuitBreaker', () => {
  it('starts closed with the documented defaults', () => {
    const { cb, clock } = breaker();
    expect(cb.getState()).toEqual({ kind: 'closed' });
    expect(cb.nextAttemptAt()).toBeNull();
    expect(cb.getMetrics()).toEqual({
      state: 'closed',
      trips: 0,
      totalCalls: 0,
      successes: 0,
      failures: 0,
      rejected: 0,
      consecutiveFailures: 0,
      windowCalls: 0,
      windowFailureRate: 0,
      lastStateChangeAt: clock.now(),
    });
    // default failureThreshold 5
    for (let i = 0; i < 4; i++) call(cb, false);
    expect(cb.getState().kind).toBe('closed');
    call(cb, false);
    // default recoveryTimeoutMs 30 000
    expect(cb.getState()).toEqual({ kind: 'open', openedAt: 0, reopensAt: 30_000, trips: 1 });
  });

  it('opens after failureThreshold consecutive failures; a success breaks the streak', () => {
    const { cb, clock, changes } = breaker({ failureThreshold: 3, recoveryTimeoutMs: 1000 });
    call(cb, false);
    call(cb, false);
    call(cb, true);
    call(cb, false);
    call(cb, false);
    expect(cb.getState().kind).toBe('closed');
    expect(cb.getMetrics().consecutiveFailures).toBe(2);
    clock.advance(10);
    call(cb, false);
    expect(cb.getState()).toEqual({ kind: 'open', openedAt: 10, reopensAt: 1010, trips: 1 });
    expect(cb.nextAttemptAt()).toBe(1010);
    expect(changes).toEqual([{ from: 'closed', to: 'open', at: 10, reason: 'consecutive_failures' }]);
  });

  it('refuses calls while open and counts them as rejected', () => {
    const { cb } = breaker({ failureThreshold: 1 });
    call(cb, false);
    expect(cb.tryAcquire()).toBe(false);
    expect(cb.tryAcquire()).toBe(false);
    expect(cb.getMetrics()).toMatchObject({
      state: 'open',
      rejected: 2,
      failures: 1,
      totalCalls: 1,
      trips: 1,
    });
  });

  it('turns half-open lazily once the recovery timeout has passed', () => {
    const { cb, clock, changes } = breaker({ failureThreshold: 1, recoveryTimeoutMs: 1000 });
    call(cb, false);
    clock.advance(999);
    expect(cb.getState().kind).toBe('open');
    expect(cb.tryAcquire()).toBe(false);
    clock.advance(1);
    expect(changes).toHaveLength(1); // nothing happens until someone asks
    expect(cb.getState()).toEqual({ kind: 'half-open', probesInFlight: 0 });
    expect(cb.nextAttemptAt()).toBeNull();
    expect(changes[1]).toEqual({ from: 'open', to: 'half-open', at: 1000, reason: 'recovery_timeout' });
  });

  it('lets at most halfOpenMaxProbes calls through while half-open', () => {
    const { cb, clock } = breaker({ failureThreshold: 1, recoveryTimeoutMs: 100 });
    call(cb, false);
    clock.advance(100);
    expect(cb.tryAcquire()).toBe(true);
    expect(cb.getState()).toEqual({ kind: 'half-open', probesInFlight: 1 });
    expect(cb.tryAcquire()).toBe(false);
    expect(cb.getMetrics().rejected).toBe(1);

    const two = breaker({ failureThreshold: 1, recoveryTimeoutMs: 100, halfOpenMaxProbes: 2 });
    call(two.cb, false);
    two.clock.advance(100);
    expect(two.cb.tryAcquire()).toBe(true);
    expect(two.cb.tryAcquire()).toBe(true);
    expect(two.cb.tryAcquire()).toBe(false);
    expect(two.cb.getState()).toEqual({ kind: 'half-open', probesInFlight: 2 });
  });

  it('release() frees a probe slot without changing state', () => {
    const { cb, clock, changes } = breaker({ failureThreshold: 1, recoveryTimeoutMs: 100 });
    call(cb, false);
    clock.advance(100);
    expect(cb.tryAcquire()).toBe(true);
    cb.release();
    expect(cb.getState()).toEqual({ kind: 'half-open', probesInFlight: 0 });
    expect(cb.tryAcquire()).toBe(true);
    expect(changes.map((c) => c.to)).toEqual(['open', 'half-open']);
    expect(cb.getMetrics().totalCalls).toBe(1);
    cb.release(); // frees the second probe
    cb.release(); // nothing to free: harmless
    expect(cb.getState()).toEqual({ kind: 'half-open', probesInFlight: 0 });
  });

  it('a probe success closes the circuit with a fresh window and streak', () => {
    const { cb, clock, changes } = breaker({ failureThreshold: 2, recoveryTimeoutMs: 100 });
    call(cb, false);
    call(cb, false);
    clock.advance(150);
    expect(call(cb, true)).toBe(true);
    expect(cb.getState()).toEqual({ kind: 'closed' });
    expect(cb.getMetrics()).toMatchObject({
      state: 'closed',
      consecutiveFailures: 0,
      windowCalls: 0,
      windowFailureRate: 0,
      lastStateChangeAt: 150,
      trips: 1,
    });
    expect(changes.at(-1)).toEqual({ from: 'half-open', to: 'closed', at: 150, reason: 'probe_succeeded' });
    // A fresh streak is needed to open again.
    call(cb, false);
    expect(cb.getState().kind).toBe('closed');
  });

  it('a probe failure opens the circuit again with a new timeout and trips + 1', () => {
    const { cb, clock, changes } = breaker({ failureThreshold: 1, recoveryTimeoutMs: 100 });
    call(cb, false);
    clock.advance(100);
    expect(call(cb, false)).toBe(true);
    expect(cb.getState()).toEqual({ kind: 'open', openedAt: 100, reopensAt: 200, trips: 2 });
    clock.advance(100);
    call(cb, false);
    expect(cb.getState()).toEqual({ kind: 'open', openedAt: 200, reopensAt: 300, trips: 3 });
    expect(cb.getMetrics().trips).toBe(3);
    expect(changes.map((c) => `${c.from}->${c.to}:${c.reason}`)).toEqual([
      'closed->open:consecutive_failures',
      'open->half-open:recovery_timeout',
      'half-open->open:probe_failed',
      'open->half-open:recovery_timeout',
      'half-open->open:probe_failed',
    ]);
    // trips in the state count openings in a row; closing starts over, the metric does not.
    clock.advance(100);
    call(cb, true);
    call(cb, false);
    expect(cb.getState()).toMatchObject({ kind: 'open', trips: 1 });
    expect(cb.getMetrics().trips).toBe(4);
  });

  describe('failure rate over the monitoring window', () => {
    const options = { failureThreshold: 1000, minimumThroughput: 10, failureRateThreshold: 0.5 };

    it('is not judged below minimumThroughput: 9 failures out of 9 calls stay closed', () => {
      const { cb } = breaker(options);
      for (let i = 0; i < 9; i++) call(cb, false);
      expect(cb.getState().kind).toBe('closed');
      expect(cb.getMetrics()).toMatchObject({ windowCalls: 9, windowFailureRate: 1 });
    });

    it('opens when 10 calls reach 50 % failures', () => {
      const { cb, clock, changes } = breaker(options);
      for (let i = 0; i < 9; i++) {
        call(cb, i % 2 === 0); // S F S F S F S F S: 4 failures of 9
        clock.advance(1000);
      }
      expect(cb.getState().kind).toBe('closed');
      call(cb, false); // 5 of 10
      expect(cb.getState().kind).toBe('open');
      expect(changes).toEqual([{ from: 'closed', to: 'open', at: 9000, reason: 'failure_rate' }]);
    });

    it('stays closed just under the threshold', () => {
      const { cb } = breaker(options);
      for (let i = 0; i < 6; i++) call(cb, true);
      for (let i = 0; i < 4; i++) call(cb, false);
      expect(cb.getMetrics()).toMatchObject({ state: 'closed', windowCalls: 10, windowFailureRate: 0.4 });
    });

    it('forgets calls older than monitoringPeriodMs', () => {
      const { cb, clock } = breaker({ ...options, monitoringPeriodMs: 60_000 });
      for (let i = 0; i < 5; i++) call(cb, true); // at t = 0
      clock.advance(30_000);
      for (let i = 0; i < 4; i++) call(cb, false); // at t = 30 s
      expect(cb.getMetrics()).toMatchObject({ windowCalls: 9 });
      clock.advance(29_999);
      expect(cb.getMetrics()).toMatchObject({ windowCalls: 9 });
      clock.advance(1); // t = 60 s: the successes at t = 0 leave the window
      expect(cb.getMetrics()).toMatchObject({ windowCalls: 4, windowFailureRate: 1 });
      // 4 old failures + 6 new: 10 calls; the 6th new failure makes the rate 10/10 and opens it.
      for (let i = 0; i < 5; i++) call(cb, false);
      expect(cb.getState().kind).toBe('closed');
      call(cb, false);
      expect(cb.getState().kind).toBe('open');
      expect(cb.getMetrics()).toMatchObject({ windowCalls: 10, windowFailureRate: 1 });
    });

    it('without pruning the same calls would have opened it', () => {
      const { cb, clock } = breaker({ ...options, monitoringPeriodMs: 1000 });
      for (let i = 0; i < 9; i++) call(cb, false);
      clock.advance(1000);
      call(cb, false); // the other 9 are gone: 1 call, below minimumThroughput
      expect(cb.getMetrics()).toMatchObject({ state: 'closed', windowCalls: 1 });
    });

    it('a success never opens the circuit, even when it completes the minimum throughput', () => {
      const { cb } = breaker(options);
      for (let i = 0; i < 5; i++) call(cb, false);
      for (let i = 0; i < 5; i++) call(cb, true);
      expect(cb.getMetrics()).toMatchObject({ state: 'closed', windowCalls: 10, windowFailureRate: 0.5 });
      call(cb, false);
      expect(cb.getState().kind).toBe('open');
    });
  });

  it('outcomes that arrive while open only move the counters', () => {
    const { cb, clock, changes } = breaker({ failureThreshold: 1, recoveryTimeoutMs: 100 });
    expect(cb.tryAcquire()).toBe(true);
    expect(cb.tryAcquire()).toBe(true);
    cb.recordFailure(); // opens
    cb.recordSuccess(); // the other call, started while closed
    expect(cb.getState().kind).toBe('open');
    // Half-open with no probe in flight: a late outcome is not a probe's.
    clock.advance(100);
    cb.recordFailure();
    expect(cb.getState()).toEqual({ kind: 'half-open', probesInFlight: 0 });
    expect(changes).toHaveLength(2);
    expect(cb.getMetrics()).toMatchObject({ successes: 1, failures: 2, totalCalls: 3 });
  });

  it('listeners hear every change with its reason, can unsubscribe, and cannot break the breaker', () => {
    const { cb, clock, changes } = breaker({ failureThreshold: 1, recoveryTimeoutMs: 100 });
    const second: string[] = [];
    cb.onStateChange(() => {
      throw new Error('listener bug');
    });
    const off = cb.onStateChange((c) => second.push(c.reason));
    call(cb, false);
    off();
    clock.advance(100);
    call(cb, true);
    cb.reset(); // already closed: no change to report
    call(cb, false);
    cb.reset();
    expect(changes.map((c) => c.reason)).toEqual([
      'consecutive_failures',
      'recovery_timeout',
      'probe_succeeded',
      'consecutive_failures',
      'reset',
    ]);
    expect(changes.at(-1)).toMatchObject({ from: 'open', to: 'closed' });
    expect(second).toEqual(['consecutive_failures']);
    expect(cb.getState()).toEqual({ kind: 'closed' });
  });

  it('reset() closes the circuit and forgets the window, keeping the counters', () => {
    const { cb } = breaker({ failureThreshold: 3, minimumThroughput: 2 });
    call(cb, true);
    call(cb, false);
    expect(cb.getMetrics()).toMatchObject({ windowCalls: 2, consecutiveFailures: 1 });
    cb.reset();
    expect(cb.getMetrics()).toMatchObject({
      state: 'closed',
      windowCalls: 0,
      consecutiveFailures: 0,
      successes: 1,
      failures: 1,
    });
  });

  describe('execute', () => {
    it('returns the value, passes the signal, and records the outcome', async () => {
      const { cb } = breaker();
      const controller = new AbortController();
      let seen: AbortSignal | undefined;
      const value = await cb.execute(
        async (signal) => {
          seen = signal;
          return 42;
        },
        { signal: controller.signal },
      );
      expect(value).toBe(42);
      expect(seen).toBe(controller.signal);
      await expect(cb.execute(boom)).rejects.toThrow('boom');
      expect(cb.getMetrics()).toMatchObject({ successes: 1, failures: 1, consecutiveFailures: 1 });
    });

    it('rejects at once with CircuitOpenError while open, without calling fn', async () => {
      const { cb } = breaker({ failureThreshold: 2, recoveryTimeoutMs: 5000 });
      await expect(cb.execute(boom)).rejects.toThrow('boom');
      await expect(cb.execute(boom)).rejects.toThrow('boom');
      let called = false;
      const error = await cb
        .execute(async () => {
          called = true;
        })
        .catch((e: unknown) => e);
      expect(called).toBe(false);
      expect(error).toBeInstanceOf(CircuitOpenError);
      expect(error).toMatchObject({ code: 'circuit_open', reopensAt: 5000 });
      expect(cb.getMetrics().rejected).toBe(1);
    });

    it('rejects with CircuitOpenError (reopensAt null) while the only probe is in flight', async () => {
      const { cb, clock } = breaker({ failureThreshold: 1, recoveryTimeoutMs: 100 });
      await expect(cb.execute(boom)).rejects.toThrow('boom');
      clock.advance(100);
      let finish!: (value: string) => void;
      const probe = cb.execute(() => new Promise<string>((resolve) => (finish = resolve)));
      expect(cb.getState()).toEqual({ kind: 'half-open', probesInFlight: 1 });
      await expect(cb.execute(async () => 'second')).rejects.toMatchObject({
        code: 'circuit_open',
        reopensAt: null,
      });
      finish('probe');
      await expect(probe).resolves.toBe('probe');
      expect(cb.getState()).toEqual({ kind: 'closed' });
    });

    it('does not count errors for which isFailure is false, and frees their probe slot', async () => {
      const { cb, clock } = breaker({ failureThreshold: 1, recoveryTimeoutMs: 100 });
      const isFailure = (error: unknown) => !(error instanceof PermanentError);
      const permanent = () => Promise.reject(new PermanentError('bad input'));
      await expect(cb.execute(permanent, { isFailure })).rejects.toBeInstanceOf(PermanentError);
      await expect(cb.execute(permanent, { isFailure })).rejects.toBeInstanceOf(PermanentError);
      expect(cb.getMetrics()).toMatchObject({ state: 'closed', failures: 0, totalCalls: 0 });

      await expect(cb.execute(boom, { isFailure })).rejects.toThrow('boom');
      expect(cb.getState().kind).toBe('open');
      clock.advance(100);
      await expect(cb.execute(permanent, { isFailure })).rejects.toBeInstanceOf(PermanentError);
      expect(cb.getState()).toEqual({ kind: 'half-open', probesInFlight: 0 });
    });

    it('a call that started before the circuit opened is not taken for a probe', async () => {
      const { cb, clock } = breaker({ failureThreshold: 1, recoveryTimeoutMs: 100 });
      let failSlow!: (error: Error) => void;
      const slow = cb.execute(() => new Promise<never>((_, reject) => (failSlow = reject)));
      await expect(cb.execute(boom)).rejects.toThrow('boom'); // opens
      clock.advance(100);
      let finishProbe!: () => void;
      const probe = cb.execute(() => new Promise<void>((resolve) => (finishProbe = resolve)));
      failSlow(new Error('late'));
      await expect(slow).rejects.toThrow('late');
      expect(cb.getState()).toEqual({ kind: 'half-open', probesInFlight: 1 });
      finishProbe();
      await probe;
      expect(cb.getState()).toEqual({ kind: 'closed' });
      expect(cb.getMetrics()).toMatchObject({ failures: 2, successes: 1 });
    });
  });

  describe('options', () => {
    it.each<[string, CircuitBreakerOptions]>([
      ['failureThreshold 0', { failureThreshold: 0 }],
      ['failureThreshold 1.5', { failureThreshold: 1.5 }],
      ['recoveryTimeoutMs -1', { recoveryTimeoutMs: -1 }],
      ['recoveryTimeoutMs NaN', { recoveryTimeoutMs: Number.NaN }],
      ['monitoringPeriodMs 0', { monitoringPeriodMs: 0 }],
      ['monitoringPeriodMs Infinity', { monitoringPeriodMs: Number.POSITIVE_INFINITY }],
      ['minimumThroughput 0', { minimumThroughput: 0 }],
      ['failureRateThreshold 0', { failureRateThreshold: 0 }],
      ['failureRateThreshold 1.1', { failureRateThreshold: 1.1 }],
      ['halfOpenMaxProbes 0', { halfOpenMaxProbes: 0 }],
      ['a clock without setTimer', { clock: { now: () => 0 } as unknown as ManualClock }],
      ['an unknown key', { failureTreshold: 3 } as CircuitBreakerOptions],
    ])('rejects %s at construction', (_name, options) => {
      expect(() => new CircuitBreaker(options)).toThrow(InvalidOptionError);
    });

    it('accepts the edges of each range', () => {
      expect(
        () =>
          new CircuitBreaker({
            failureThreshold: 1,
            recoveryTimeoutMs: 0,
            monitoringPeriodMs: 1,
            minimumThroughput: 1,
            failureRateThreshold: 1,
            halfOpenMaxProbes: 1,
            clock: new ManualClock(),
          }),
      ).not.toThrow();
    });
  });
});
