import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/support/temp-dir.js';
import { BackendError } from '../../errors.js';
import { WalSync } from './wal-sync.js';

describe('WalSync', () => {
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir('steadfast-walsync-');
  });
  afterEach(() => dir.remove());

  it('answers every caller, sharing a sync among callers that asked while one ran', async () => {
    const path = join(dir.path, 'store.db-wal');
    writeFileSync(path, 'frames');
    const sync = new WalSync(path);
    await Promise.all(Array.from({ length: 50 }, () => sync.sync()));
    expect(sync.syncs).toBeLessThanOrEqual(2);
    await sync.sync();
    expect(sync.pending).toBe(0);
    await sync.close();
    await expect(sync.sync()).rejects.toBeInstanceOf(BackendError);
  });

  it('rejects with a BackendError when the log cannot be synced', async () => {
    const sync = new WalSync(join(dir.path, 'missing-wal'));
    const failure = await sync.sync().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BackendError);
    expect((failure as BackendError).code).toBe('backend_error');
    await sync.close();
  });
});
