import { it, expect } from 'vitest';
import { createProcessor, ManualClock, PostgresBackend } from '../../index.js';
import { settle, waitFor } from '../../../test/support/wait-for.js';
it('renew', async () => {
  const schema = 'sf_dbg_' + Math.floor(Math.random() * 1e6);
  const clock = new ManualClock();
  const mk = () => {
    const b = new PostgresBackend({
      connectionString: 'postgres://postgres@127.0.0.1:5432/test',
      schema,
      clock,
      poolSize: 4,
    });
    for (const m of ['claim', 'extendLeases', 'complete'] as const) {
      const orig = (b as any)[m].bind(b);
      (b as any)[m] = async (...a: any[]) => {
        const t = clock.now();
        const r = await orig(...a);
        console.log(m, 'issued', t, 'done', clock.now(), JSON.stringify(r)?.slice(0, 150));
        return r;
      };
    }
    return b;
  };
  const p = createProcessor({ logger: false, backend: mk(), clock });
  let release!: () => void;
  const started: number[] = [];
  p.destination('long', { leaseMs: 3000, timeoutMs: 60_000 }, async (_e, ctx) => {
    started.push(ctx.attempt);
    await new Promise<void>((resolve) => (release = resolve));
  });
  await p.start();
  await p.addEvent({ type: 't', payload: {} });
  await waitFor(() => started.length === 1);
  const other = mk();
  await other.open();
  for (let i = 0; i < 10; i++) {
    clock.advance(1000);
    console.log('advanced', clock.now());
    await settle();
    const stolen = await other.claim({ destination: 'long', limit: 1, leaseMs: 3000, workerId: 'thief' });
    expect(stolen.deliveries).toHaveLength(0);
  }
  await other.close();
  release();
  await settle(100);
  expect(started).toEqual([1]);
  await p.stop();
});
