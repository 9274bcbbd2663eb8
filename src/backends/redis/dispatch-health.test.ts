import { describe, expect, it } from 'vitest';
import { assessHealth, type HealthInputs } from '../../observability/health.js';

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
  failure: { rate: 0, samples: 0 },
  circuits: {},
  now: Date.UTC(2026, 0, 1),
};

describe('the dispatch health component', () => {
  it('is absent without a dispatch layer, and the score is unchanged', () => {
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
