import {
  HandlerTimeoutError,
  InvalidOptionError,
  LeaseExpiredError,
  PermanentError,
  RetryAfterError,
} from '../errors.js';
import { createBackoff, type Backoff, type BackoffOptions } from './backoff.js';

/** Error codes that mean "the network or peer hiccuped": worth another attempt. */
export const DEFAULT_RETRYABLE_ERROR_CODES: readonly string[] = [
  'ECONNRESET',
  'ETIMEDOUT',
  'ECONNREFUSED',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'ESOCKETTIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
];

export interface RetryOptions extends BackoffOptions {
  /** Attempts in all, the first included. default 5 */
  maxAttempts?: number;
  /** Errors whose `code` (or `cause.code`) is in this list are retried. default: the network codes above */
  retryableErrorCodes?: readonly string[];
  /**
   * Your own classification. Return `true` (retry), `false` (dead-letter now) or `undefined`
   * (let the default rules decide).
   */
  isRetryable?: (error: unknown) => boolean | undefined;
}

export const DEFAULT_MAX_ATTEMPTS = 5;

/** What to do after a failed attempt. */
export type RetryDecision =
  | { readonly kind: 'retry'; readonly delayMs: number }
  | { readonly kind: 'dead'; readonly reason: 'permanent' | 'exhausted' };

export interface RetryPolicy {
  readonly maxAttempts: number;
  /** `attempt` is the 1-based number of the attempt that just failed. */
  decide(error: unknown, attempt: number): RetryDecision;
  isRetryable(error: unknown): boolean;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: unknown }).cause;
  return cause === error ? undefined : errorCode(cause);
}

/**
 * Default classification: `PermanentError` never retries; `RetryAfterError`, a handler timeout
 * and a lost worker (expired lease) always do; an error with a boolean `retryable` property
 * (an HTTP destination's status errors) says itself; an
 * error carrying a `code` retries only if the code is listed, and an error without a code
 * (a plain `throw new Error()`) is assumed transient and retries.
 */
export function createRetryPolicy(options: RetryOptions = {}, random?: () => number): RetryPolicy {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 1000) {
    throw new InvalidOptionError(`retry.maxAttempts must be an integer from 1 to 1000, got ${maxAttempts}`);
  }
  const backoff: Backoff = createBackoff(options, random);
  const retryable = new Set(options.retryableErrorCodes ?? DEFAULT_RETRYABLE_ERROR_CODES);
  const predicate = options.isRetryable;

  const isRetryable = (error: unknown): boolean => {
    const verdict = predicate?.(error);
    if (verdict !== undefined) return verdict;
    if (error instanceof PermanentError) return false;
    if (error instanceof RetryAfterError) return true;
    if (error instanceof HandlerTimeoutError || error instanceof LeaseExpiredError) return true;
    const flagged = (error as { retryable?: unknown } | null)?.retryable;
    if (typeof flagged === 'boolean') return flagged;
    const code = errorCode(error);
    return code === undefined ? true : retryable.has(code);
  };

  return {
    maxAttempts,
    isRetryable,
    decide(error, attempt) {
      if (!isRetryable(error)) return { kind: 'dead', reason: 'permanent' };
      if (attempt >= maxAttempts) return { kind: 'dead', reason: 'exhausted' };
      if (error instanceof RetryAfterError) return { kind: 'retry', delayMs: error.retryAfterMs };
      return { kind: 'retry', delayMs: backoff.delayMs(attempt) };
    },
  };
}
