import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createProcessor,
  ManualClock,
  PermanentError,
  type Alert,
  type ReliableEventProcessor,
} from '../../src/index.js';
import { tempDir } from '../support/temp-dir.js';
import { settle, waitFor } from '../support/wait-for.js';

describe('health and alerts through an outage', () => {
  const dir = tempDir('steadfast-health-');
  let processor: ReliableEventProcessor | null = null;

  afterEach(async () => {
    await processor?.stop();
    dir.remove();
  });

  it('goes from healthy to unhealthy and back, alerting once per crossing', async () => {
    processor = createProcessor({ storage: { kind: 'sqlite', path: join(dir.path, 's.db') }, logger: false });
    let down = false;
    processor.destination(
      'downstream',
      { circuitBreaker: { failureThreshold: 2, recoveryTimeoutMs: 50 }, retry: { baseDelayMs: 10 } },
      async () => {
        if (down) throw new Error('connection refused');
      },
    );
    const alerts: Alert[] = [];
    processor.onAlert((alert) => alerts.push(alert));
    let reopens = 0;
    processor.on('circuit:state-changed', (e) => {
      if (e.from === 'half-open' && e.to === 'open') reopens += 1;
    });
    await processor.start();

    await processor.addEvent({ type: 't', payload: {} });
    await waitFor(async () => (await processor!.getMetrics()).succeeded === 1);
    expect(await processor.getHealthStatus()).toMatchObject({ status: 'healthy', score: 100 });

    down = true;
    await processor.addEvents([1, 2, 3].map((n) => ({ type: 't', payload: { n } })));
    await waitFor(() => alerts.some((a) => a.type === 'circuit_opened'));
    const sick = await processor.getHealthStatus();
    expect(sick.status).toBe('unhealthy');
    expect(sick.components.circuits).toMatchObject({ status: 'unhealthy', value: 1 });
    expect(sick.score).toBeLessThan(100);

    // Failed probes re-open the breaker without a new alert.
    await waitFor(() => reopens >= 2);
    expect(alerts.map((a) => a.type)).toEqual(['circuit_opened']);

    down = false;
    await waitFor(async () => (await processor!.getMetrics()).queueDepth === 0);
    await waitFor(() => alerts.some((a) => a.type === 'circuit_closed'));
    expect((await processor.getHealthStatus()).components.circuits.status).toBe('healthy');
    expect(alerts.map((a) => a.type)).toEqual(['circuit_opened', 'circuit_closed']);
    expect(alerts[0]).toMatchObject({ severity: 'critical', destination: 'downstream' });
  });

  it('raises the dead-letter alert once when the count crosses the threshold, on the periodic check', async () => {
    const clock = new ManualClock();
    processor = createProcessor({
      storage: { kind: 'sqlite', path: join(dir.path, 'dl.db') },
      logger: false,
      clock,
      alerts: { deadLetterCount: 2, checkIntervalMs: 1000 },
    });
    processor.destination('picky', {}, async () => {
      throw new PermanentError('no');
    });
    const alerts: Alert[] = [];
    processor.onAlert((alert) => alerts.push(alert));
    await processor.start();
    await processor.addEvents([1, 2, 3].map((n) => ({ type: 't', payload: { n } })));
    await waitFor(async () => (await processor!.deadLetters.stats()).count === 3);
    clock.advance(1000);
    await waitFor(() => alerts.length === 1);
    for (let i = 0; i < 3; i++) {
      clock.advance(1000);
      await settle();
    }
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      type: 'dead_letters_over_threshold',
      figures: { count: 3, threshold: 2 },
    });
  });
});
