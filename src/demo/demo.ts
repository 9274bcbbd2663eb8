import { createProcessor, PermanentError, type EventRecord, type ReliableEventProcessor } from '../index.js';

export interface DemoOptions {
  readonly dataDir: string;
  readonly out?: (line: string) => void;
}

/** Waits until `check` holds, looking every 20 ms, for at most `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('the demo did not finish in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function describeRecord(record: EventRecord): string[] {
  const lines = [`${record.event.type} ${record.event.eventId}`];
  for (const d of record.deliveries) {
    const errors = d.history
      .filter((a) => a.error)
      .map((a) => `#${a.number} ${a.error?.name}: ${a.error?.message}`)
      .join('; ');
    lines.push(
      `  → ${d.destination.padEnd(8)} ${d.state.padEnd(9)} after ${d.attempts} attempt(s)${errors ? `  (${errors})` : ''}`,
    );
  }
  return lines;
}

/**
 * A tour of the library: three destinations, events that succeed, fail and retry, and one that
 * is dead-lettered. Prints what happened to each event.
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  const out = options.out ?? ((line: string) => console.log(line));
  const processor: ReliableEventProcessor = createProcessor({
    storage: { kind: 'sqlite', path: `${options.dataDir}/steadfast.db` },
    logger: { level: 'error' },
  });
  const retry = { baseDelayMs: 200, maxDelayMs: 1000, maxAttempts: 4 };

  processor.destination('audit', { types: '*' }, async (event, ctx) => {
    ctx.logger.debug({ type: event.type }, 'audited');
  });
  processor.destination('email', { types: ['user.*'], retry }, async (event, ctx) => {
    // A flaky mail server: the first two attempts for each user fail.
    if (ctx.attempt <= 2)
      throw Object.assign(new Error('connection reset by mail server'), { code: 'ECONNRESET' });
  });
  processor.destination('billing', { types: ['order.*'], ordered: true, retry }, async (event) => {
    const { amount } = event.payload as { amount: number };
    if (amount < 0) throw new PermanentError(`refusing to charge a negative amount (${amount})`);
  });
  processor.on('delivery:retry-scheduled', (e) =>
    out(
      `  retry: ${e.destination} ${e.type} attempt ${e.attempt} failed (${e.error.message}); next in ${e.delayMs} ms`,
    ),
  );
  processor.on('delivery:dead-lettered', (e) =>
    out(`  dead letter: ${e.destination} ${e.type} after attempt ${e.attempt}: ${e.error.message}`),
  );

  await processor.start();
  out(`Steadfast demo — store: ${options.dataDir}/steadfast.db\n`);
  const results = await processor.addEvents([
    { type: 'user.signed_up', key: 'user-1', payload: { email: 'ada@example.com' } },
    { type: 'order.placed', key: 'order-7', payload: { amount: 42 } },
    { type: 'order.refunded', key: 'order-7', payload: { amount: -42 } },
    { type: 'order.placed', key: 'order-8', payload: { amount: 10 } },
    { type: 'page.viewed', payload: { path: '/pricing' } },
  ]);
  const duplicate = await processor.addEvent({
    eventId: results[0]!.eventId,
    type: 'user.signed_up',
    payload: {},
  });
  out(
    `added ${results.length} events durably; the same eventId again answers duplicate=${duplicate.duplicate}\n`,
  );

  const settled = async () => {
    for (const r of results) {
      const record = await processor.getEvent(r.eventId);
      if (!record || record.deliveries.some((d) => !['succeeded', 'dead'].includes(d.state))) return false;
    }
    return true;
  };
  await until(settled, 30_000);

  out('\nWhat happened to each event:');
  for (const r of results) {
    const record = await processor.getEvent(r.eventId);
    if (record) describeRecord(record).forEach((line) => out(line));
  }
  const stats = await processor.deadLetters.stats();
  const metrics = await processor.getMetrics();
  const health = await processor.getHealthStatus();
  out(`\ndead letters in the store: ${stats.count} (by destination: ${JSON.stringify(stats.byDestination)})`);
  out(
    `this run: ${metrics.succeeded} deliveries succeeded, ${metrics.failed} attempts failed, ${metrics.retried} retried, ${metrics.deadLettered} dead-lettered; health ${health.status} (${health.score}/100)`,
  );
  out('replay dead letters with processor.deadLetters.replay(ids) once the cause is fixed.');
  await processor.stop();
}
