import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/support/temp-dir.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { Checkpointer } from './checkpointer.js';
import { CHECKPOINTER, FREE, WriterLock } from './writer-lock.js';

describe('Checkpointer', () => {
  let dir: ReturnType<typeof tempDir>;

  beforeEach(() => {
    dir = tempDir('steadfast-checkpointer-');
  });

  afterEach(() => {
    dir.remove();
  });

  it('reports a thread that fails, ends it and frees the writer lock it may have died holding', async () => {
    const path = join(dir.path, 'not-a-database.db');
    writeFileSync(path, 'this file is not an SQLite database '.repeat(200));
    const lock = new WriterLock();
    const slot = new Int32Array(lock.buffer);
    // As if the thread had died in the middle of rewinding the WAL.
    Atomics.store(slot, 0, CHECKPOINTER);
    const failures: Error[] = [];
    const checkpointer = new Checkpointer({
      path,
      intervalMs: 5,
      busyTimeoutMs: 100,
      lock,
      restartFrames: 1,
      walLimitBytes: 1024,
      restartBusyMs: 20,
      onFailure: (error) => failures.push(error),
    });
    await waitFor(() => failures.length > 0);
    expect(failures[0]?.message).toMatch(/SQLITE_NOTADB/);
    // A commit parked on the lock goes on once the thread is gone.
    await lock.whenFree();
    expect(Atomics.load(slot, 0)).toBe(FREE);
    // Stopping a thread that has already ended answers at once.
    await checkpointer.stop();
    expect(failures).toHaveLength(1);
  });
});
