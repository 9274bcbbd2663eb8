import { describe, expect, it } from 'vitest';
import { HandlerTimeoutError, InvalidOptionError, PermanentError, RetryAfterError } from '../errors.js';
import { createRetryPolicy } from './retry-policy.js';

const coded = (code: string) => Object.assign(new Error(code), { code });

describe('createRetryPolicy', () => {
  const policy = createRetryPolicy({ jitter: false });

  it('retries network error codes with backoff until maxAttempts (default 5)', () => {
    for (const code of ['ECONNRESET', 'ETIMEDOUT', 'ECONNREFUSED', 'EPIPE', 'EAI_AGAIN']) {
      expect(policy.decide(coded(code), 1)).toEqual({ kind: 'retry', delayMs: 1000 });
    }
    expect(policy.decide(coded('ECONNRESET'), 4)).toEqual({ kind: 'retry', delayMs: 8000 });
    expect(policy.decide(coded('ECONNRESET'), 5)).toEqual({ kind: 'dead', reason: 'exhausted' });
  });

  it('looks for the code on the cause too (fetch wraps socket errors)', () => {
    const wrapped = new TypeError('fetch failed', { cause: coded('ECONNREFUSED') });
    expect(policy.isRetryable(wrapped)).toBe(true);
  });

  it('dead-letters PermanentError and unlisted codes at once, retries uncoded errors', () => {
    expect(policy.decide(new PermanentError('no'), 1)).toEqual({ kind: 'dead', reason: 'permanent' });
    expect(policy.decide(coded('ERR_INVALID_ARG_TYPE'), 1)).toEqual({ kind: 'dead', reason: 'permanent' });
    expect(policy.decide(new Error('plain'), 1).kind).toBe('retry');
    expect(policy.decide(new HandlerTimeoutError('slow'), 1).kind).toBe('retry');
  });

  it('follows an error that says whether it is retryable', () => {
    expect(
      policy.isRetryable(Object.assign(new Error('503'), { code: 'http_status', retryable: true })),
    ).toBe(true);
    expect(policy.isRetryable(Object.assign(new Error('410'), { retryable: false }))).toBe(false);
  });

  it('uses the delay a RetryAfterError asks for', () => {
    expect(policy.decide(new RetryAfterError(4321), 2)).toEqual({ kind: 'retry', delayMs: 4321 });
    expect(() => new RetryAfterError(-1)).toThrow(RangeError);
  });

  it('lets a user predicate decide, falling back to the rules when it answers undefined', () => {
    const custom = createRetryPolicy({
      retryableErrorCodes: ['E_BUSY'],
      isRetryable: (e) => ((e as Error).message === 'never' ? false : undefined),
    });
    expect(custom.isRetryable(new Error('never'))).toBe(false);
    expect(custom.isRetryable(coded('E_BUSY'))).toBe(true);
    expect(custom.isRetryable(coded('ECONNRESET'))).toBe(false);
  });

  it('rejects a bad maxAttempts at construction', () => {
    expect(() => createRetryPolicy({ maxAttempts: 0 })).toThrow(InvalidOptionError);
    expect(() => createRetryPolicy({ maxAttempts: 1.5 })).toThrow(/maxAttempts/);
  });
});
