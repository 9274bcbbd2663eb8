import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { servicesAvailable, TEST_DATABASE_URL } from '../../../test/support/services.js';
import { TcpProxy } from '../../../test/support/tcp-proxy.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { ManualClock } from '../../clock.js';
import { BackendError, InvalidOptionError, LeaseLostError } from '../../errors.js';
import { toEnvelope, type EventEnvelope } from '../../event.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import { SCHEMA_VERSION } from './migrations.js';
import { PostgresBackend } from './postgres-backend.js';

const available = await servicesAvailable('postgres');

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function event(eventId: string, key: string | null = null): EventEnvelope {
  return toEnvelope(
    { eventId, type: 't', payload: { eventId }, ...(key === null ? {} : { key }) },
    { now: Date.now() },
  );
}

const report = (clock: ManualClock) => ({ startedAt: clock.now(), durationMs: 1 });

(available ? describe : describe.skip)('PostgresBackend', () => {
  let schema: string;
  let clock: ManualClock;
  const opened: PostgresBackend[] = [];

  const open = async (options: { poolSize?: number } = {}) => {
    const backend = new PostgresBackend({ connectionString: TEST_DATABASE_URL, schema, clock, ...options });
    opened.push(backend);
    await backend.open();
    return backend;
  };

  beforeEach(() => {
    schema = `sf_test_${randomBytes(6).toString('hex')}`;
    clock = new ManualClock();
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((b) => b.close()));
    await admin((c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
  });

  it('rejects bad options at construction', () => {
    expect(() => new PostgresBackend({ connectionString: TEST_DATABASE_URL, schema: 'Bad-Name' })).toThrow(
      InvalidOptionError,
    );
    expect(() => new PostgresBackend({ connectionString: TEST_DATABASE_URL, poolSize: 0 })).toThrow(
      InvalidOptionError,
    );
  });

  it('migrates once when several backends open the same new schema at the same moment', async () => {
    await Promise.all(Array.from({ length: 4 }, () => open()));
    const versions = await admin((c) =>
      c.query(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`),
    );
    expect(versions.rows.map((r: { version: number }) => r.version)).toEqual(
      Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
    );
  });

  it('rejects with BackendError when PostgreSQL never answers', async () => {
    const backend = new PostgresBackend({
      connectionString: 'postgres://postgres@127.0.0.1:1/test',
      schema,
      connectAttempts: 2,
      connectRetryDelayMs: 1,
    });
    await expect(backend.open()).rejects.toBeInstanceOf(BackendError);
    await backend.close();
  });

  it('shares one transaction among concurrent publishes, each answered once committed', async () => {
    const backend = await open();
    await backend.registerDestination({ name: 'a', types: '*', ordered: false, onDeadLetter: 'skip' });
    const before = backend.stats;
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => backend.publish([event(`e${i}`)], { dedupWindowMs: 60_000 })),
    );
    const after = backend.stats;
    expect(results.every(([r]) => r?.duplicate === false && r.destinations[0] === 'a')).toBe(true);
    expect(after.writes - before.writes).toBe(64);
    expect(after.commits - before.commits).toBeLessThan(64);
    const count = await admin((c) => c.query(`SELECT COUNT(*)::int AS n FROM ${schema}.deliveries`));
    expect(count.rows[0]).toEqual({ n: 64 });
    const again = await Promise.all([
      backend.publish([event('e1')], { dedupWindowMs: 60_000 }),
      backend.publish([event('new'), event('new')], { dedupWindowMs: 60_000 }),
    ]);
    expect(again.flat().map((r) => r.duplicate)).toEqual([true, false, true]);
  });

  it('fails only the call whose events the store refuses, not the others of its batch', async () => {
    const backend = await open();
    await backend.registerDestination({ name: 'a', types: '*', ordered: false, onDeadLetter: 'skip' });
    // PostgreSQL text cannot hold a NUL character.
    const [good, bad] = await Promise.allSettled([
      backend.publish([event('fine')], { dedupWindowMs: 60_000 }),
      backend.publish([event('bad\u0000id')], { dedupWindowMs: 60_000 }),
    ]);
    expect(good.status).toBe('fulfilled');
    expect(bad.status).toBe('rejected');
    expect((bad as PromiseRejectedResult).reason).toBeInstanceOf(BackendError);
    expect(await backend.getEvent('fine')).not.toBeNull();
  });

  it('reports scheduled deliveries, claims by id, and promotes the next of an ordered key', async () => {
    const backend = await open();
    await backend.registerDestination({ name: 'o', types: '*', ordered: true, onDeadLetter: 'skip' });
    const scheduled: ScheduledDelivery[] = [];
    backend.onScheduled((list) => scheduled.push(...list));
    await backend.publish([event('k1', 'K'), event('k2', 'K'), event('solo', 'S')], {
      dedupWindowMs: 60_000,
    });
    expect(scheduled.map((s) => s.runAt)).toEqual([clock.now(), clock.now()]);
    const [head, solo] = scheduled;
    const due = await backend.schedulable({ dueBefore: clock.now(), limit: 10 });
    expect(due.map((d) => d.deliveryId)).toEqual([head!.deliveryId, solo!.deliveryId]);
    expect(
      await backend.schedulable({ dueBefore: clock.now(), limit: 10, afterId: head!.deliveryId }),
    ).toHaveLength(1);

    const k2 = (await backend.getEvent('k2'))!.deliveries[0]!;
    expect(k2.waitingForKey).toBe(true);
    // Not the head of its key: not claimable by id.
    expect(
      await backend.claimByIds({
        destination: 'o',
        deliveryIds: [k2.deliveryId],
        leaseMs: 1000,
        workerId: 'w',
      }),
    ).toEqual([]);
    const [claimed] = await backend.claimByIds({
      destination: 'o',
      deliveryIds: [head!.deliveryId, 'nonsense'],
      leaseMs: 1000,
      workerId: 'w',
    });
    expect(claimed?.event.eventId).toBe('k1');
    // Leased: neither schedulable nor claimable again until the lease ends.
    expect(
      await backend.claimByIds({
        destination: 'o',
        deliveryIds: [head!.deliveryId],
        leaseMs: 1000,
        workerId: 'w',
      }),
    ).toEqual([]);
    expect(
      (await backend.schedulable({ dueBefore: clock.now(), limit: 10 })).map((d) => d.deliveryId),
    ).toEqual([solo!.deliveryId]);
    expect(
      (await backend.schedulable({ dueBefore: clock.now() + 1000, limit: 10, destination: 'o' })).map(
        (d) => d.deliveryId,
      ),
    ).toEqual([head!.deliveryId, solo!.deliveryId]);

    scheduled.length = 0;
    await backend.complete(claimed!.lease, report(clock));
    expect(scheduled).toEqual([{ deliveryId: k2.deliveryId, destination: 'o', runAt: clock.now() }]);
    await expect(backend.complete(claimed!.lease, report(clock))).rejects.toBeInstanceOf(LeaseLostError);

    scheduled.length = 0;
    const [next] = await backend.claimByIds({
      destination: 'o',
      deliveryIds: [k2.deliveryId],
      leaseMs: 1000,
      workerId: 'w',
    });
    await backend.retry(
      next!.lease,
      { ...report(clock), error: { name: 'E', code: null, message: 'x', stack: null } },
      clock.now() + 500,
    );
    expect(scheduled).toEqual([{ deliveryId: k2.deliveryId, destination: 'o', runAt: clock.now() + 500 }]);
  });

  it('never leases one delivery to two backends claiming at the same time', async () => {
    const first = await open();
    const second = await open();
    await first.registerDestination({ name: 'a', types: '*', ordered: false, onDeadLetter: 'skip' });
    const total = 300;
    await first.publish(
      Array.from({ length: total }, (_, i) => event(`c${i}`)),
      { dedupWindowMs: 60_000 },
    );
    const seen = new Map<string, number>();
    const worker = async (backend: PostgresBackend) => {
      for (;;) {
        const { deliveries } = await backend.claim({
          destination: 'a',
          limit: 7,
          leaseMs: 60_000,
          workerId: 'w',
        });
        if (deliveries.length === 0) return;
        for (const d of deliveries) seen.set(d.lease.deliveryId, (seen.get(d.lease.deliveryId) ?? 0) + 1);
      }
    };
    await Promise.all([worker(first), worker(second), worker(first), worker(second)]);
    expect(seen.size).toBe(total);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
  });

  it('wakes another backend through NOTIFY when work arrives', async () => {
    const producer = await open();
    const consumer = await open();
    const heard: (readonly string[] | 'all')[] = [];
    consumer.onWork((destinations) => heard.push(destinations));
    await producer.registerDestination({ name: 'n', types: '*', ordered: false, onDeadLetter: 'skip' });
    await producer.publish([event('wake')], { dedupWindowMs: 60_000 });
    await waitFor(() => heard.some((d) => d !== 'all' && d.includes('n')));
  });

  it('survives its connections being terminated: operations retry, and the listener reconnects', async () => {
    const backend = await open({ poolSize: 2 });
    await backend.registerDestination({ name: 'a', types: '*', ordered: false, onDeadLetter: 'skip' });
    await backend.publish([event('before')], { dedupWindowMs: 60_000 });
    const terminate = () =>
      admin((c) =>
        c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [
          `steadfast ${schema}`,
        ]),
      );
    const listenerBefore = backend.listenerConnections;
    const killed = await terminate();
    expect(killed.rowCount).toBeGreaterThanOrEqual(2); // the listener and at least one pooled connection
    const results = await backend.publish([event('after')], { dedupWindowMs: 60_000 });
    expect(results[0]?.duplicate).toBe(false);
    expect((await backend.queueStats()).depth).toBe(2);
    await waitFor(() => backend.listenerConnections > listenerBefore);
  });

  it('survives a connection dying while an operation holds it (no unhandled client error)', async () => {
    const target = new URL(TEST_DATABASE_URL);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.up();
    const locker = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await locker.connect();
    try {
      const proxied = new URL(TEST_DATABASE_URL);
      proxied.port = String(proxy.port);
      const backend = new PostgresBackend({ connectionString: proxied.toString(), schema, clock });
      opened.push(backend);
      await backend.open();
      // The operation waits on the lock while holding its pooled connection, which then dies.
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${schema}.deliveries IN ACCESS EXCLUSIVE MODE`);
      const stats = backend.queueStats();
      await waitFor(async () => {
        const waiting = await admin((c) =>
          c.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [
            `steadfast ${schema}`,
          ]),
        );
        return (waiting.rowCount ?? 0) > 0;
      });
      await proxy.down();
      await expect(stats).rejects.toBeInstanceOf(BackendError);
      await locker.query('COMMIT');
      await proxy.up();
      expect((await backend.queueStats()).depth).toBe(0);
    } finally {
      await locker.end();
      await proxy.down();
    }
  });

  it('once the store answers again after a lost connection, wakes local runners and other processes', async () => {
    const target = new URL(TEST_DATABASE_URL);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.up();
    try {
      const consumer = await open();
      const proxied = new URL(TEST_DATABASE_URL);
      proxied.port = String(proxy.port);
      const producer = new PostgresBackend({ connectionString: proxied.toString(), schema, clock });
      opened.push(producer);
      await producer.open();
      const local: (readonly string[] | 'all')[] = [];
      const remote: (readonly string[] | 'all')[] = [];
      producer.onWork((destinations) => local.push(destinations));
      consumer.onWork((destinations) => remote.push(destinations));
      await proxy.down();
      await expect(producer.ping()).rejects.toBeInstanceOf(BackendError);
      await proxy.up();
      await producer.ping();
      // The consumer's own LISTEN connection never dropped: its "all" came from the producer.
      await waitFor(() => local.includes('all') && remote.includes('all'));
    } finally {
      await proxy.down();
    }
  });
});
