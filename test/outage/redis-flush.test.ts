import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createProcessor,
  PostgresBackend,
  RedisDispatchBackend,
  type ReliableEventProcessor,
} from '../../src/index.js';
import { dropSchema, freePort, servicesAvailable, TEST_DATABASE_URL } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';

/** A throw-away redis-server of this test's own (never the shared one): no persistence. */
class OwnRedis {
  private child: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  static async start(): Promise<OwnRedis> {
    const redis = new OwnRedis(await freePort());
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    await waitFor(() => this.answers(), { timeoutMs: 10_000, message: 'redis-server to answer' });
  }

  /** Kills it by its PID and waits until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid!, signal);
    await exited;
    this.child = null;
  }

  async command(...args: string[]): Promise<unknown> {
    const client = new Redis(this.url, { maxRetriesPerRequest: 1, lazyConnect: true });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await client.call(args[0]!, ...args.slice(1));
    } finally {
      client.disconnect();
    }
  }

  private async answers(): Promise<boolean> {
    try {
      return (await this.command('PING')) === 'PONG';
    } catch {
      return false;
    }
  }
}

const available = await servicesAvailable('postgres');
let hasRedisServer = true;
try {
  await new Promise<void>((resolve, reject) => {
    const probe = spawn('redis-server', ['--version'], { stdio: 'ignore' });
    probe.once('error', reject);
    probe.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
  });
} catch {
  hasRedisServer = false;
  console.warn('skipping: redis-server is not installed');
}

(available && hasRedisServer ? describe : describe.skip)('redis dispatch under a Redis outage', () => {
  let redis: OwnRedis;
  let schema: string;
  let backend: RedisDispatchBackend;
  let processor: ReliableEventProcessor;
  let seen: Map<string, number>;

  beforeEach(async () => {
    redis = await OwnRedis.start();
    schema = `sf_test_${randomBytes(6).toString('hex')}`;
    backend = new RedisDispatchBackend({
      store: new PostgresBackend({ connectionString: TEST_DATABASE_URL, schema }),
      redisUrl: redis.url,
      prefix: `sf_test_${randomBytes(4).toString('hex')}`,
      reconcileIntervalMs: 200,
    });
    processor = createProcessor({ backend, logger: false });
    seen = new Map();
    processor.destination('sink', { concurrency: 16 }, async (event) => {
      seen.set(event.eventId, (seen.get(event.eventId) ?? 0) + 1);
    });
    await processor.start();
  });

  afterEach(async () => {
    await processor.stop({ timeoutMs: 1000 });
    await redis.kill();
    await dropSchema(schema);
  });

  async function publish(batches: number, size: number, ids: string[]): Promise<void> {
    for (let b = 0; b < batches; b++) {
      const results = await processor.addEvents(
        Array.from({ length: size }, (_, i) => ({ type: 'load', payload: { b, i } })),
      );
      ids.push(...results.map((r) => r.eventId));
    }
  }

  async function expectExactlyOnce(ids: readonly string[]): Promise<void> {
    await waitFor(() => ids.every((id) => seen.has(id)), {
      timeoutMs: 60_000,
      message: 'every event delivered',
    });
    await waitFor(async () => (await processor.getMetrics()).queueDepth === 0);
    expect(seen.size).toBe(ids.length);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
  }

  it('delivers every acknowledged event exactly once although Redis is flushed mid-run', async () => {
    const ids: string[] = [];
    await publish(15, 100, ids);
    expect(await redis.command('FLUSHALL')).toBe('OK');
    await publish(15, 100, ids);
    await expectExactlyOnce(ids);
    // The reconciler and the settled jobs leave Redis holding nothing that is still due.
    await waitFor(async () => (await backend.reconcile()) === 0);
  });

  it('keeps ingesting while Redis is down, falls back to the store, and moves back when it returns', async () => {
    const ids: string[] = [];
    await publish(10, 100, ids);
    expect(backend.dispatchHealth().status).toBe('healthy');

    await redis.kill('SIGKILL');
    await waitFor(() => backend.dispatchHealth().status === 'degraded');
    // Ingest only needs the store: every batch is acknowledged while Redis is away.
    await publish(10, 100, ids);
    expect(backend.dispatchHealth().message).toContain('unreachable');
    const duringOutage = ids.slice(1000);
    await waitFor(() => duringOutage.every((id) => seen.has(id)), {
      timeoutMs: 60_000,
      message: 'events published during the outage delivered from the store',
    });

    await redis.start();
    await waitFor(() => backend.dispatchHealth().status === 'healthy', { timeoutMs: 30_000 });
    await publish(10, 100, ids);
    await expectExactlyOnce(ids);

    // Dispatch is back on Redis: what the runner did not take at once as it was published (at
    // most its 4 slots) waits as BullMQ jobs, and held attempts of claimed ones show up as active jobs.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered = 0;
    processor.destination('gated', { concurrency: 4, types: ['gated'] }, async () => {
      entered += 1;
      await gate;
    });
    await processor.addEvents(Array.from({ length: 8 }, () => ({ type: 'gated', payload: {} })));
    await waitFor(() => entered === 4);
    const jobs = async (list: string): Promise<number> => {
      const keys = (await redis.command('KEYS', `*:gated:${list}`)) as string[];
      return keys.length === 0 ? 0 : Number(await redis.command('LLEN', keys[0]!));
    };
    expect((await jobs('wait')) + (await jobs('active'))).toBeGreaterThanOrEqual(4);
    release();
    await waitFor(() => entered === 8);
  });
});
