import { randomBytes } from 'node:crypto';
import { describe } from 'vitest';
import { PostgresBackend } from '../../src/index.js';
import { dropSchema, servicesAvailable, TEST_DATABASE_URL } from '../support/services.js';
import { defineBackendContract } from './suite.js';

if (await servicesAvailable('postgres')) {
  defineBackendContract('postgres', async () => {
    // A fresh schema per test: every backend the test opens shares it, and it is dropped after.
    const schema = `sf_test_${randomBytes(6).toString('hex')}`;
    return {
      open: (clock) =>
        new PostgresBackend({ connectionString: TEST_DATABASE_URL, schema, clock, poolSize: 4 }),
      destroy: () => dropSchema(schema),
    };
  });
} else {
  describe.skip('backend contract: postgres (PostgreSQL not reachable)', () => undefined);
}
