import { systemClock, type Clock } from '../clock.js';
import { toErrorInfo } from '../core/error-info.js';
import { RetryExhaustedError, type AttemptErrorInfo, type AttemptHistory } from '../errors.js';
import { createRetryPolicy, type RetryOptions } from './retry-policy.js';

export interface ExecuteWithRetryOptions extends RetryOptions {
  /** Waits between attempts go through `clock.setTimer`. default `systemClock` */
  clock?: Clock;
  /** Aborting stops the run: a pending wait is cancelled and the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Source of the jitter. default `Math.random` */
  random?: () => number;
}

export interface RetryResult<T> {
  readonly value: T;
  /** Every attempt made, the successful last one included. */
  readonly attempts: readonly AttemptHistory[];
}

/**
 * Calls `fn` until it resolves, deciding after each failure with `createRetryPolicy(retry)` — the
 * dispatcher's rules: `PermanentError` (or an error the classification rejects) stops at once,
 * `RetryAfterError` waits the time it names, anything else backs off with jitter until
 * `maxAttempts`. On giving up it rejects with `RetryExhaustedError` (`cause`: the last error,
 * `attempts`: the history).
 *
 * `fn` receives the 1-based attempt number and the caller's signal (one that never aborts when
 * none is given); an attempt in flight is not interrupted, but once the signal has aborted no
 * further attempt starts and the promise rejects with `signal.reason`.
 */
export async function executeWithRetry<T>(
  fn: (attempt: number, signal: AbortSignal) => Promise<T>,
  retry: ExecuteWithRetryOptions = {},
): Promise<RetryResult<T>> {
  const { clock = systemClock, signal, random, ...options } = retry;
  const policy = createRetryPolicy(options, random);
  const fnSignal = signal ?? new AbortController().signal;
  const attempts: AttemptHistory[] = [];

  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    const startedAt = clock.now();
    try {
      const value = await fn(attempt, fnSignal);
      attempts.push({
        number: attempt,
        startedAt,
        durationMs: clock.now() - startedAt,
        error: null,
        delayMs: null,
      });
      return { value, attempts };
    } catch (error) {
      const failed = {
        number: attempt,
        startedAt,
        durationMs: clock.now() - startedAt,
        error: errorInfo(error),
      };
      signal?.throwIfAborted();
      const decision = policy.decide(error, attempt);
      if (decision.kind === 'dead') {
        attempts.push({ ...failed, delayMs: null });
        throw new RetryExhaustedError(decision.reason, attempts, { cause: error });
      }
      attempts.push({ ...failed, delayMs: decision.delayMs });
      await sleep(clock, decision.delayMs, signal);
    }
  }
}

function errorInfo(error: unknown): AttemptErrorInfo {
  const { name, code, message } = toErrorInfo(error);
  return { name, code, message };
}

/** Resolves after `ms` on `clock`; rejects with `signal.reason` if the signal aborts first. */
function sleep(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      cancel();
      reject(signal?.reason);
    };
    const cancel = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
