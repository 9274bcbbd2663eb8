import { InvalidOptionError } from '../errors.js';

/** Delay before the next attempt, given how many attempts have failed so far (1 = the first). */
export interface Backoff {
  delayMs(failedAttempts: number): number;
}

export type BackoffStrategy = 'exponential' | 'linear' | 'fixed';

export interface BackoffOptions {
  /** default `'exponential'` */
  strategy?: BackoffStrategy;
  /** First delay. default 1000 */
  baseDelayMs?: number;
  /** No delay is longer than this. default 30000 */
  maxDelayMs?: number;
  /** Growth factor for `exponential`. default 2 */
  multiplier?: number;
  /**
   * Random spread as a fraction of the delay: 0.1 spreads each delay over ±10 %.
   * `true` means 0.1, `false` means 0. default 0.1
   */
  jitter?: number | boolean;
}

export const BACKOFF_DEFAULTS = {
  strategy: 'exponential',
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
  multiplier: 2,
  jitter: 0.1,
} as const satisfies Required<BackoffOptions>;

function check(name: string, value: number, min: number, max = Number.POSITIVE_INFINITY): number {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new InvalidOptionError(`${name} must be a number between ${min} and ${max}, got ${value}`);
  }
  return value;
}

/** Builds the backoff an options object describes; bad values throw `InvalidOptionError`. */
export function createBackoff(options: BackoffOptions = {}, random: () => number = Math.random): Backoff {
  const strategy = options.strategy ?? BACKOFF_DEFAULTS.strategy;
  const base = check('retry.baseDelayMs', options.baseDelayMs ?? BACKOFF_DEFAULTS.baseDelayMs, 0);
  const max = check('retry.maxDelayMs', options.maxDelayMs ?? BACKOFF_DEFAULTS.maxDelayMs, 0);
  const multiplier = check('retry.multiplier', options.multiplier ?? BACKOFF_DEFAULTS.multiplier, 1);
  const jitterOption = options.jitter ?? BACKOFF_DEFAULTS.jitter;
  const jitter = check(
    'retry.jitter',
    jitterOption === true ? 0.1 : jitterOption === false ? 0 : jitterOption,
    0,
    1,
  );
  if (!['exponential', 'linear', 'fixed'].includes(strategy)) {
    throw new InvalidOptionError(`retry.strategy must be exponential, linear or fixed, got ${strategy}`);
  }

  const raw = (n: number): number => {
    switch (strategy) {
      case 'exponential':
        return base * multiplier ** (n - 1);
      case 'linear':
        return base * n;
      case 'fixed':
        return base;
    }
  };

  return {
    delayMs(failedAttempts: number): number {
      const capped = Math.min(max, raw(Math.max(1, failedAttempts)));
      const spread = jitter === 0 ? 1 : 1 - jitter + 2 * jitter * random();
      return Math.round(Math.min(max, capped * spread));
    },
  };
}
