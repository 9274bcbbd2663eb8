import { randomBytes } from 'node:crypto';
import { describe, it } from 'vitest';
import { PostgresBackend, RedisDispatchBackend } from '../../src/index.js';
import {
  deleteRedisKeys,
  dropSchema,
  servicesAvailable,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
} from '../support/services.js';
import { defineBackendContract } from './suite.js';

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
        await deleteRedisKeys(prefix);
      },
    };
  });
} else {
  describe.skip('backend contract: postgres + redis (PostgreSQL or Redis not reachable)', () => {
    it('needs PostgreSQL and Redis', () => undefined);
  });
}
