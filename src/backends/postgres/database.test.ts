import { describe, expect, it } from 'vitest';
import { servicesAvailable, TEST_DATABASE_URL } from '../../../test/support/services.js';
import { Database } from './database.js';

const available = await servicesAvailable('postgres');

describe.skipIf(!available)('Database', () => {
  const open = (synchronousCommit?: boolean) =>
    new Database({
      connectionString: TEST_DATABASE_URL,
      schema: 'public',
      poolSize: 1,
      tries: 1,
      retryDelayMs: 1,
      ...(synchronousCommit === undefined ? {} : { synchronousCommit }),
    });

  it('commits synchronously by default, and without waiting for the WAL flush for bookkeeping', async () => {
    const durable = open();
    const bookkeeping = open(false);
    try {
      const setting = (db: Database) =>
        db.run('show', (sql) => sql.query<{ synchronous_commit: string }>('SHOW synchronous_commit'));
      expect((await setting(durable))[0]?.synchronous_commit).toBe('on');
      expect((await setting(bookkeeping))[0]?.synchronous_commit).toBe('off');
    } finally {
      await Promise.all([durable.close(), bookkeeping.close()]);
    }
  });
});
