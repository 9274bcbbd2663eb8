import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/support/temp-dir.js';
import { openDatabase, type SqliteDatabase } from './database.js';
import { WalSync } from './wal-sync.js';
import { WriteQueue } from './write-queue.js';
import { CHECKPOINTER, FREE, WriterLock } from './writer-lock.js';

describe('WriteQueue with a WalSync', () => {
  let dir: ReturnType<typeof tempDir>;
  let db: SqliteDatabase;
  let walSync: WalSync;
  let onCommitted: (touched: ReadonlySet<string>) => void;
  let queue: WriteQueue;
  let lock: WriterLock;

  const insert = (value: string) => (touch: (destination: string) => void) => {
    db.prepare('INSERT INTO t (v) VALUES (?)').run(value);
    touch('t');
    return value;
  };
  const level = (): number => Number(db.pragma('synchronous', { simple: true }));

  beforeEach(() => {
    dir = tempDir('steadfast-write-queue-');
    const path = join(dir.path, 'store.db');
    db = openDatabase({ path, busyTimeoutMs: 1000 });
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE t (v TEXT NOT NULL)');
    walSync = new WalSync(`${path}-wal`);
    onCommitted = () => undefined;
    lock = new WriterLock();
    queue = new WriteQueue(db, (touched) => onCommitted(touched), walSync, lock);
  });

  afterEach(async () => {
    await queue.drain();
    await walSync.close();
    db.close();
    dir.remove();
  });

  it('answers an awaited durable write only after a sync of the WAL, one per write', async () => {
    for (const v of ['a', 'b', 'c']) await queue.write(insert(v), true);
    expect(walSync.syncs).toBe(3);
    expect(level()).toBe(0); // OFF: the commit itself does not sync, the WalSync does
    expect(queue.stats).toEqual({ commits: 3, writes: 3 });
  });

  it('syncs concurrent durable writes once, off the event loop, before answering any of them', async () => {
    const values = await Promise.all(
      Array.from({ length: 20 }, (_, i) => queue.write(insert(`v${i}`), true)),
    );
    expect(values).toHaveLength(20);
    expect(queue.stats).toEqual({ commits: 1, writes: 20 });
    expect(walSync.syncs).toBe(1);
    expect(level()).toBe(0); // OFF: the commit itself did not sync
    expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(20);
  });

  it('holds every write that arrives while a sync runs and commits them together once it ends', async () => {
    const late: Promise<number>[] = [];
    const syncsWhenAnswered = (write: Promise<string>): Promise<number> => write.then(() => walSync.syncs);
    onCommitted = () => {
      if (late.length > 0) return;
      // Called right after the first commit, whose sync is now on the thread pool.
      expect(walSync.running).toBe(true);
      late.push(
        syncsWhenAnswered(queue.write(insert('bookkeeping'), false)),
        syncsWhenAnswered(queue.write(insert('late'), true)),
      );
    };
    await Promise.all([queue.write(insert('x'), true), queue.write(insert('y'), true)]);
    // The bookkeeping write was committed once the first sync had ended, the durable one once
    // the second (its own) had.
    await expect(Promise.all(late)).resolves.toEqual([1, 2]);
    expect(queue.stats).toEqual({ commits: 2, writes: 4 });
  });

  it('holds its commits while the checkpointer holds the writer lock, the event loop running on', async () => {
    // As the checkpointer thread does before it rewinds the WAL.
    const slot = new Int32Array(lock.buffer);
    Atomics.store(slot, 0, CHECKPOINTER);
    let committed = false;
    const write = queue.write(insert('held'), true).then(() => (committed = true));
    for (let turn = 0; turn < 10; turn += 1) await new Promise((resolve) => setImmediate(resolve));
    expect(committed).toBe(false);
    expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(0);
    Atomics.store(slot, 0, FREE);
    Atomics.notify(slot, 0);
    await write;
    expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(1);
    // Given back after the commit: the checkpointer can take it again.
    expect(Atomics.load(slot, 0)).toBe(FREE);
    expect(lock.tryAcquire()).toBe(true);
    lock.release();
  });

  it('goes back to syncing inside COMMIT when told to', async () => {
    queue.syncInsideCommit();
    expect(queue.syncsOffLoop).toBe(false);
    await Promise.all(Array.from({ length: 5 }, (_, i) => queue.write(insert(`v${i}`), true)));
    expect(walSync.syncs).toBe(0);
    expect(level()).toBe(2);
    await queue.write(insert('bookkeeping'), false);
    expect(level()).toBe(1); // NORMAL
  });
});
