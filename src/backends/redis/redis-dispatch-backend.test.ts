import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  deleteRedisKeys,
  dropSchema,
  freePort,
  servicesAvailable,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
} from '../../../test/support/services.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { BackendError, InvalidOptionError } from '../../errors.js';
import { toEnvelope } from '../../event.js';
import { PostgresBackend } from '../postgres/postgres-backend.js';
import { jobIdOf, queueNameOf } from './names.js';
import { RedisDispatchBackend } from './redis-dispatch-backend.js';

const ATTEMPT = { startedAt: 0, durationMs: 1 };
const ERROR = { name: 'Error', code: null, message: 'down', stack: null };

describe('RedisDispatchBackend options', () => {
  const store = {} as never;

  it('rejects bad values at construction', () => {
    expect(() => new RedisDispatchBackend({ store, redisUrl: 'http://x' })).toThrow(InvalidOptionError);
    expect(() => new RedisDispatchBackend({ store, redisUrl: 'not a url' })).toThrow(InvalidOptionError);
    expect(
      () => new RedisDispatchBackend({ store, redisUrl: TEST_REDIS_URL, reconcileIntervalMs: 0 }),
    ).toThrow(InvalidOptionError);
    expect(() => new RedisDispatchBackend({ store, redisUrl: TEST_REDIS_URL, prefix: '' })).toThrow(
      InvalidOptionError,
    );
  });
});

((await servicesAvailable('postgres', 'redis')) ? describe : describe.skip)('RedisDispatchBackend', () => {
  let schema: string;
  let prefix: string;
  let backend: RedisDispatchBackend;
  let redis: Redis;
  let queue: Queue;

  beforeEach(async () => {
    const id = randomBytes(6).toString('hex');
    schema = `sf_test_${id}`;
    prefix = `sf_test_${id}`;
    backend = new RedisDispatchBackend({
      store: new PostgresBackend({ connectionString: TEST_DATABASE_URL, schema }),
      redisUrl: TEST_REDIS_URL,
      prefix,
      // Long enough that only the passes a test asks for run.
      reconcileIntervalMs: 3_600_000,
    });
    await backend.open();
    await backend.registerDestination({ name: 'd', types: '*', ordered: false, onDeadLetter: 'skip' });
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    queue = new Queue(queueNameOf('d'), { connection: redis, prefix, skipVersionCheck: true });
  });

  afterEach(async () => {
    await backend.close();
    await queue.close();
    redis.disconnect();
    await deleteRedisKeys(prefix);
    await dropSchema(schema);
  });

  async function publish(count: number): Promise<void> {
    const events = Array.from({ length: count }, (_, i) =>
      toEnvelope({ type: 't', payload: { i } }, { now: Date.now() }),
    );
    await backend.publish(events, { dedupWindowMs: 60_000 });
  }

  async function stateOf(deliveryId: string): Promise<string> {
    const job = await queue.getJob(jobIdOf(deliveryId));
    return job ? await job.getState() : 'missing';
  }

  async function claimOne() {
    let claimed: Awaited<ReturnType<RedisDispatchBackend['claim']>>['deliveries'] = [];
    await waitFor(async () => {
      claimed = (await backend.claim({ destination: 'd', limit: 1, leaseMs: 30_000, workerId: 'w' }))
        .deliveries;
      return claimed.length === 1;
    });
    return claimed[0]!;
  }

  it('enqueues a published delivery as a job and hands it out to a claim', async () => {
    await publish(1);
    await waitFor(async () => (await queue.getWaitingCount()) === 1);
    const delivery = await claimOne();
    expect(await stateOf(delivery.lease.deliveryId)).toBe('active');
    await backend.complete(delivery.lease, ATTEMPT);
    expect(await stateOf(delivery.lease.deliveryId)).toBe('missing');
  });

  it('re-enqueues a retried delivery as a delayed job, and a replayed one after its job was removed', async () => {
    await publish(1);
    await waitFor(async () => (await queue.getWaitingCount()) === 1);
    const delivery = await claimOne();
    const id = delivery.lease.deliveryId;
    await backend.retry(delivery.lease, { ...ATTEMPT, error: ERROR }, Date.now() + 500);
    expect(await stateOf(id)).toBe('delayed');
    const job = await queue.getJob(jobIdOf(id));
    expect(job!.delay).toBeGreaterThan(0);

    const again = await claimOne();
    expect(again.lease.deliveryId).toBe(id);
    expect(again.attempt).toBe(2);
    // At the due instant either Redis (the promoted job) or the store (a top-up) hands it out;
    // either way no second job stays behind for it.
    expect(['active', 'missing']).toContain(await stateOf(id));
    await backend.deadLetter(again.lease, { ...ATTEMPT, error: ERROR }, 'skip');
    expect(await stateOf(id)).toBe('missing');

    await backend.deadLetters.replay([id]);
    await waitFor(async () => (await stateOf(id)) === 'waiting');
  });

  it('drops a job whose delivery is no longer claimable', async () => {
    await publish(1);
    await waitFor(async () => (await queue.getWaitingCount()) === 1);
    const delivery = await claimOne();
    await backend.complete(delivery.lease, ATTEMPT);
    // A stale job for the finished delivery (as if an add raced with the settle).
    await queue.add(
      'delivery',
      { deliveryId: delivery.lease.deliveryId, runAt: 0 },
      { jobId: jobIdOf(delivery.lease.deliveryId), removeOnComplete: true },
    );
    const result = await backend.claim({ destination: 'd', limit: 5, leaseMs: 30_000, workerId: 'w' });
    expect(result.deliveries).toEqual([]);
    expect(await stateOf(delivery.lease.deliveryId)).toBe('missing');
  });

  it('refills Redis when its keys vanish, and finds nothing to do when nothing is missing', async () => {
    await publish(5);
    await waitFor(async () => (await queue.getWaitingCount()) === 5);
    expect(await backend.reconcile()).toBe(0);
    const keys = await redis.keys(`${prefix}:*`);
    await redis.unlink(...keys);
    expect(await queue.getWaitingCount()).toBe(0);
    expect(await backend.reconcile()).toBe(5);
    expect(await queue.getWaitingCount()).toBe(5);
  });

  it('refuses to open with a BackendError when Redis never answers', async () => {
    const port = await freePort();
    const lonely = new RedisDispatchBackend({
      store: new PostgresBackend({ connectionString: TEST_DATABASE_URL, schema }),
      redisUrl: `redis://127.0.0.1:${port}`,
      prefix,
      connectAttempts: 2,
      connectRetryDelayMs: 50,
    });
    const error = await lonely.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).message).toContain(`127.0.0.1:${port}`);
    await lonely.close();
  });
});
