import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../errors.js';
import { createBackoff } from './backoff.js';

const delays = (b: ReturnType<typeof createBackoff>, n: number) =>
  Array.from({ length: n }, (_, i) => b.delayMs(i + 1));

describe('createBackoff', () => {
  it('defaults to exponential from 1000 ms, doubling, capped at 30000 ms', () => {
    expect(delays(createBackoff({ jitter: false }), 7)).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000,
    ]);
  });

  it('grows linearly or stays fixed when asked', () => {
    expect(delays(createBackoff({ strategy: 'linear', baseDelayMs: 500, jitter: false }), 4)).toEqual([
      500, 1000, 1500, 2000,
    ]);
    expect(delays(createBackoff({ strategy: 'fixed', baseDelayMs: 250, jitter: false }), 3)).toEqual([
      250, 250, 250,
    ]);
  });

  it('spreads delays by the jitter fraction and never beyond the cap', () => {
    const low = createBackoff({ jitter: 0.1 }, () => 0);
    const high = createBackoff({ jitter: 0.1 }, () => 0.999999);
    expect(low.delayMs(1)).toBe(900);
    expect(high.delayMs(1)).toBe(1100);
    expect(high.delayMs(10)).toBe(30000);
    expect(createBackoff({ jitter: true }, () => 0).delayMs(2)).toBe(1800);
  });

  it('rejects bad options at construction', () => {
    expect(() => createBackoff({ baseDelayMs: -1 })).toThrow(InvalidOptionError);
    expect(() => createBackoff({ jitter: 2 })).toThrow(/retry.jitter/);
    expect(() => createBackoff({ multiplier: 0.5 })).toThrow(/multiplier/);
    expect(() => createBackoff({ strategy: 'random' as never })).toThrow(/strategy/);
  });
});
