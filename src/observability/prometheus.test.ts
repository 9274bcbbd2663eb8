import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { waitFor } from '../../test/support/wait-for.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import { PermanentError } from '../errors.js';

/** `name{labels} value` lines of a Prometheus text exposition, as a map. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const at = line.lastIndexOf(' ');
    map.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return map;
}

describe('Prometheus metrics', () => {
  const dir = tempDir('steadfast-prom-');
  let processor: ReliableEventProcessor | null = null;

  afterEach(async () => {
    await processor?.stop();
    dir.remove();
  });

  it('exposes steadfast_* names and labels that move by exactly the workload', async () => {
    processor = createProcessor({ storage: { kind: 'sqlite', path: join(dir.path, 's.db') }, logger: false });
    processor.destination('ok', { types: ['order.*'] }, async () => undefined);
    processor.destination('bad', { types: ['order.paid'] }, async () => {
      throw new PermanentError('rejected');
    });
    await processor.start();
    await processor.addEvents([
      { eventId: 'a', type: 'order.paid', payload: {} },
      { eventId: 'b', type: 'order.paid', payload: {} },
      { eventId: 'c', type: 'order.placed', payload: {} },
    ]);
    await processor.addEvent({ eventId: 'a', type: 'order.paid', payload: {} });
    await waitFor(async () => (await processor!.deadLetters.stats()).count === 2);
    await waitFor(async () => (await processor!.getMetrics()).succeeded === 3);
    const [first] = (await processor.deadLetters.list()).items;
    await processor.deadLetters.replay([first!.id]);
    await waitFor(async () => (await processor!.getMetrics()).deadLettered === 3);
    await processor.deadLetters.delete([first!.id]);

    const text = await processor.metricsRegistry.metrics();
    const m = samples(text);
    expect(m.get('steadfast_events_ingested_total{type="order.paid",duplicate="false"}')).toBe(2);
    expect(m.get('steadfast_events_ingested_total{type="order.placed",duplicate="false"}')).toBe(1);
    expect(m.get('steadfast_events_ingested_total{type="order.paid",duplicate="true"}')).toBe(1);
    expect(m.get('steadfast_deliveries_total{destination="ok",outcome="succeeded"}')).toBe(3);
    expect(m.get('steadfast_deliveries_total{destination="bad",outcome="failed"}')).toBe(3);
    expect(m.get('steadfast_deliveries_total{destination="bad",outcome="dead_lettered"}')).toBe(3);
    expect(m.get('steadfast_attempt_duration_seconds_count{destination="ok"}')).toBe(3);
    expect(m.get('steadfast_ingest_latency_seconds_count')).toBe(4);
    expect(m.get('steadfast_dlq_messages_total{status="consumed"}')).toBe(3);
    expect(m.get('steadfast_dlq_messages_total{status="reprocessed"}')).toBe(1);
    expect(m.get('steadfast_dlq_messages_total{status="deleted"}')).toBe(1);
    expect(m.get('steadfast_dead_letters')).toBe(1);
    expect(m.get('steadfast_queue_depth{destination="ok"}')).toBe(0);
    expect(m.get('steadfast_queue_depth{destination="bad"}')).toBe(0);
    expect(m.get('steadfast_circuit_state{destination="bad"}')).toBe(0);
    expect(m.has('steadfast_dead_letters_oldest_age_seconds')).toBe(true);
    expect(m.has('steadfast_oldest_pending_age_seconds{destination="ok"}')).toBe(true);
    expect(text).toContain('# TYPE steadfast_circuit_trips_total counter');
  });
});
