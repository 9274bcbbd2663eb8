import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.js';
import { InvalidOptionError, PermanentError, RetryAfterError, RetryExhaustedError } from '../errors.js';
import { executeWithRetry } from './execute-with-retry.js';

/** Lets pending promise callbacks run until the code under test waits on the clock again. */
async function untilWaiting(clock: ManualClock): Promise<void> {
  for (let i = 0; i < 100 && clock.pendingTimers === 0; i++) await Promise.resolve();
  expect(clock.pendingTimers).toBe(1);
}

/** A function that fails with the given errors in turn, then resolves `'ok'`. */
function failing(clock: ManualClock, errors: unknown[], tookMs = 0) {
  const calls: { attempt: number; at: number }[] = [];
  const fn = async (attempt: number): Promise<string> => {
    calls.push({ attempt, at: clock.now() });
    clock.advance(tookMs);
    const error = errors[attempt - 1];
    if (error !== undefined) throw error;
    return 'ok';
  };
  return { fn, calls };
}

const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

describe('executeWithRetry', () => {
  it('resolves on the first success without waiting', async () => {
    const clock = new ManualClock(0);
    const result = await executeWithRetry(async () => 7, { clock });
    expect(result).toEqual({
      value: 7,
      attempts: [{ number: 1, startedAt: 0, durationMs: 0, error: null, delayMs: null }],
    });
    expect(clock.pendingTimers).toBe(0);
  });

  it('retries with the exact backoff delays (jitter off) and keeps the attempt history', async () => {
    const clock = new ManualClock(0);
    const { fn, calls } = failing(clock, [reset(), reset(), reset()], 5);
    const run = executeWithRetry(fn, { clock, jitter: false, baseDelayMs: 100, multiplier: 2 });

    await untilWaiting(clock);
    clock.advance(99);
    expect(calls).toHaveLength(1);
    clock.advance(1);
    await untilWaiting(clock);
    clock.advance(200);
    await untilWaiting(clock);
    clock.advance(400);

    const result = await run;
    expect(result.value).toBe('ok');
    expect(calls).toEqual([
      { attempt: 1, at: 0 },
      { attempt: 2, at: 105 },
      { attempt: 3, at: 310 },
      { attempt: 4, at: 715 },
    ]);
    const error = { name: 'Error', code: 'ECONNRESET', message: 'socket hang up' };
    expect(result.attempts).toEqual([
      { number: 1, startedAt: 0, durationMs: 5, error, delayMs: 100 },
      { number: 2, startedAt: 105, durationMs: 5, error, delayMs: 200 },
      { number: 3, startedAt: 310, durationMs: 5, error, delayMs: 400 },
      { number: 4, startedAt: 715, durationMs: 5, error: null, delayMs: null },
    ]);
  });

  it('gives up after maxAttempts with RetryExhaustedError carrying the history and the last error', async () => {
    const clock = new ManualClock(0);
    const last = reset();
    const { fn, calls } = failing(clock, [reset(), reset(), last]);
    const run = executeWithRetry(fn, { clock, jitter: false, baseDelayMs: 10, maxAttempts: 3 });
    const settled = run.catch((e: unknown) => e);
    await untilWaiting(clock);
    clock.advance(10);
    await untilWaiting(clock);
    clock.advance(20);

    const error = await settled;
    expect(error).toBeInstanceOf(RetryExhaustedError);
    expect(error).toMatchObject({ code: 'retry_exhausted', reason: 'exhausted', cause: last });
    expect((error as RetryExhaustedError).attempts.map((a) => [a.number, a.delayMs])).toEqual([
      [1, 10],
      [2, 20],
      [3, null],
    ]);
    expect(calls).toHaveLength(3);
    expect(clock.pendingTimers).toBe(0);
  });

  it('stops at once on a PermanentError', async () => {
    const clock = new ManualClock(0);
    const permanent = new PermanentError('malformed payload');
    const { fn, calls } = failing(clock, [permanent]);
    const error = await executeWithRetry(fn, { clock }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'retry_exhausted', reason: 'permanent', cause: permanent });
    expect((error as RetryExhaustedError).attempts).toEqual([
      {
        number: 1,
        startedAt: 0,
        durationMs: 0,
        error: { name: 'PermanentError', code: 'permanent_error', message: 'malformed payload' },
        delayMs: null,
      },
    ]);
    expect(calls).toHaveLength(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('follows the same classification as the dispatcher (unlisted codes, isRetryable)', async () => {
    const clock = new ManualClock(0);
    const unlisted = Object.assign(new Error('bad arg'), { code: 'ERR_INVALID_ARG_TYPE' });
    await expect(executeWithRetry(failing(clock, [unlisted]).fn, { clock })).rejects.toMatchObject({
      reason: 'permanent',
    });
    const run = executeWithRetry(failing(clock, [unlisted]).fn, {
      clock,
      jitter: false,
      baseDelayMs: 1,
      isRetryable: () => true,
    });
    await untilWaiting(clock);
    clock.advance(1);
    await expect(run).resolves.toMatchObject({ value: 'ok' });
  });

  it('waits the delay a RetryAfterError names instead of the backoff', async () => {
    const clock = new ManualClock(0);
    const { fn, calls } = failing(clock, [new RetryAfterError(7000), new RetryAfterError(0)]);
    const run = executeWithRetry(fn, { clock, jitter: false, baseDelayMs: 100 });
    await untilWaiting(clock);
    clock.advance(6999);
    expect(calls).toHaveLength(1);
    clock.advance(1);
    await untilWaiting(clock);
    clock.advance(0);
    const result = await run;
    expect(calls.map((c) => c.at)).toEqual([0, 7000, 7000]);
    expect(result.attempts.map((a) => a.delayMs)).toEqual([7000, 0, null]);
  });

  it('applies jitter from the backoff options', async () => {
    const clock = new ManualClock(0);
    const run = executeWithRetry(failing(clock, [reset()]).fn, {
      clock,
      baseDelayMs: 1000,
      jitter: 0.5,
      random: () => 0, // the low end of ±50 %
    });
    await untilWaiting(clock);
    clock.advance(500);
    await expect(run).resolves.toMatchObject({ attempts: [{ delayMs: 500 }, { delayMs: null }] });
  });

  it('hands fn the attempt number and the signal', async () => {
    const clock = new ManualClock(0);
    const controller = new AbortController();
    const seen: [number, AbortSignal][] = [];
    const run = executeWithRetry(
      async (attempt, signal) => {
        seen.push([attempt, signal]);
        if (attempt === 1) throw reset();
        return attempt;
      },
      { clock, jitter: false, baseDelayMs: 1, signal: controller.signal },
    );
    await untilWaiting(clock);
    clock.advance(1);
    await expect(run).resolves.toMatchObject({ value: 2 });
    expect(seen).toEqual([
      [1, controller.signal],
      [2, controller.signal],
    ]);
    // Without a signal of its own, fn still gets one (that never aborts).
    await executeWithRetry(
      async (_attempt, signal) => {
        expect(signal.aborted).toBe(false);
      },
      { clock },
    );
  });

  describe('abort', () => {
    it('cancels the wait and rejects with the signal reason', async () => {
      const clock = new ManualClock(0);
      const controller = new AbortController();
      const { fn, calls } = failing(clock, [reset(), reset()]);
      const run = executeWithRetry(fn, { clock, jitter: false, signal: controller.signal });
      await untilWaiting(clock);
      const reason = new Error('shutting down');
      controller.abort(reason);
      await expect(run).rejects.toBe(reason);
      expect(clock.pendingTimers).toBe(0);
      clock.advance(60_000);
      expect(calls).toHaveLength(1);
    });

    it('does not start when the signal has already aborted', async () => {
      const clock = new ManualClock(0);
      const { fn, calls } = failing(clock, []);
      const error = await executeWithRetry(fn, { clock, signal: AbortSignal.abort() }).catch(
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ name: 'AbortError' });
      expect(calls).toHaveLength(0);
    });

    it('does not retry an attempt that failed after the signal aborted', async () => {
      const clock = new ManualClock(0);
      const controller = new AbortController();
      const reason = new Error('stop');
      const run = executeWithRetry(
        async () => {
          controller.abort(reason);
          throw reset();
        },
        { clock, signal: controller.signal },
      );
      await expect(run).rejects.toBe(reason);
      expect(clock.pendingTimers).toBe(0);
    });
  });

  it('rejects bad retry options with InvalidOptionError', async () => {
    await expect(executeWithRetry(async () => 1, { maxAttempts: 0 })).rejects.toBeInstanceOf(
      InvalidOptionError,
    );
    await expect(executeWithRetry(async () => 1, { baseDelayMs: -1 })).rejects.toBeInstanceOf(
      InvalidOptionError,
    );
  });
});
