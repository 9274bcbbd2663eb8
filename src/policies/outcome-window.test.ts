import { describe, expect, it } from 'vitest';
import { OutcomeWindow } from './outcome-window.js';

describe('OutcomeWindow', () => {
  it('counts an entry while now - t < periodMs', () => {
    const window = new OutcomeWindow(100);
    window.push(0, true);
    window.push(50, false);
    window.prune(99);
    expect([window.calls, window.failureRate]).toEqual([2, 0.5]);
    window.prune(100);
    expect([window.calls, window.failureRate]).toEqual([1, 0]);
    window.prune(150);
    expect([window.calls, window.failureRate]).toEqual([0, 0]);
  });

  it('stays exact across compactions of a long run', () => {
    const window = new OutcomeWindow(1000);
    for (let t = 0; t < 10_000; t++) window.push(t, t % 4 === 0);
    // the last push (t = 9999) keeps 9000..9999: an entry at t counts while now - t < 1000
    const expected = Array.from({ length: 1000 }, (_, i) => 9000 + i);
    expect(window.calls).toBe(expected.length);
    expect(window.failureRate).toBeCloseTo(expected.filter((t) => t % 4 === 0).length / expected.length, 12);
    window.clear();
    expect([window.calls, window.failureRate]).toEqual([0, 0]);
  });
});
