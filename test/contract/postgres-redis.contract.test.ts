import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, it } from 'vitest';
import { PostgresBackend, RedisDispatchBackend } from '../../src/index.js';
import { servicesAvailable, TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/services.js';
import { defineBackendContract } from './suite.js';

/** Deletes every key under `<prefix>:` (never the whole shared Redis). */
async function deleteKeys(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

if (await servicesAvailable('postgres', 'redis')) {
  defineBackendContract('postgres + redis', async () => {
    const id = randomBytes(6).toString('hex');
    const schema = `sf_test_${id}`;
    const prefix = `sf_test_${id}`;
    return {
      open: (clock) =>
        new RedisDispatchBackend({
          store: new PostgresBackend({ connectionString: TEST_DATABASE_URL, schema, clock }),
          redisUrl: TEST_REDIS_URL,
          prefix,
          clock,
          connectAttempts: 3,
          connectRetryDelayMs: 1000,
        }),
      destroy: async () => {
        await dropSchema(schema);
        await deleteKeys(prefix);
      },
    };
  });
} else {
  describe.skip('backend contract: postgres + redis (PostgreSQL or Redis not reachable)', () => {
    it('needs PostgreSQL and Redis', () => undefined);
  });
}
