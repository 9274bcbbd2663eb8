import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe } from 'vitest';
import { PostgresBackend } from '../../src/index.js';
import { servicesAvailable, TEST_DATABASE_URL } from '../support/services.js';
import { defineBackendContract } from './suite.js';

if (await servicesAvailable('postgres')) {
  defineBackendContract('postgres', async () => {
    // A fresh schema per test: every backend the test opens shares it, and it is dropped after.
    const schema = `sf_test_${randomBytes(6).toString('hex')}`;
    return {
      open: (clock) =>
        new PostgresBackend({ connectionString: TEST_DATABASE_URL, schema, clock, poolSize: 4 }),
      destroy: async () => {
        const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
        await client.connect();
        try {
          await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        } finally {
          await client.end();
        }
      },
    };
  });
} else {
  describe.skip('backend contract: postgres (PostgreSQL not reachable)', () => undefined);
}
