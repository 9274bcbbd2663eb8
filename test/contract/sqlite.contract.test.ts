import { join } from 'node:path';
import { SqliteBackend } from '../../src/index.js';
import { tempDir } from '../support/temp-dir.js';
import { defineBackendContract } from './suite.js';

defineBackendContract('sqlite', async () => {
  const dir = tempDir('steadfast-contract-');
  const path = join(dir.path, 'store.db');
  return {
    open: (clock) => new SqliteBackend({ path, clock, watchIntervalMs: 5 }),
    destroy: async () => dir.remove(),
  };
});
