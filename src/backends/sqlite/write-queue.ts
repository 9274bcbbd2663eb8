import { BackendError } from '../../errors.js';
import type { SqliteDatabase, SqliteStatement } from './database.js';

/** Collects the destinations a batch of writes made work for. */
export type Touch = (destination: string) => void;

interface TransactionStatements {
  readonly begin: SqliteStatement;
  readonly commit: SqliteStatement;
  readonly rollback: SqliteStatement;
  readonly savepoint: SqliteStatement;
  readonly release: SqliteStatement;
  readonly rollbackTo: SqliteStatement;
  readonly syncFull: SqliteStatement;
  readonly syncNormal: SqliteStatement;
}

type WriteResult = { ok: true; value: unknown } | { ok: false; error: unknown };

interface QueuedWrite {
  readonly run: (touch: Touch) => unknown;
  readonly durable: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit. Every write of one event-loop turn runs in ONE transaction, and all of them
 * settle only after the commit. A failing write rolls back alone and rejects alone: the batch
 * is then run again with a savepoint around each write (the common case pays for none).
 * Concurrent `addEvent` calls therefore share one fsync.
 *
 * A batch that holds a durable write (ingest, dead-lettering, replay) commits with
 * `synchronous=FULL`. A batch of bookkeeping only (claims, lease renewals, completions)
 * commits with `synchronous=NORMAL`: it survives a process crash, and on power loss the worst
 * case is that a delivery is attempted again. WAL keeps either way consistent, and the next
 * FULL commit makes everything before it durable too.
 */
export class WriteQueue {
  private queue: QueuedWrite[] = [];
  private scheduled = false;
  private full = true;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private tx: TransactionStatements | null = null;
  private commits = 0;
  private writes = 0;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly onCommitted: (touched: ReadonlySet<string>) => void,
  ) {}

  /** Runs `run` inside the next group transaction; resolves with its result after the commit. */
  write<T>(run: (touch: Touch) => T, durable: boolean): Promise<T> {
    if (this.closed) return Promise.reject(new BackendError('the store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, durable, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Resolves once every write queued so far has been committed. */
  drain(): Promise<void> {
    if (!this.scheduled && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Transactions committed and writes they carried, since the store opened. */
  get stats(): { commits: number; writes: number } {
    return { commits: this.commits, writes: this.writes };
  }

  /** Refuses new writes; already queued ones still run. */
  close(): void {
    this.closed = true;
  }

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    if (batch.length > 0) this.commit(batch);
    if (this.queue.length === 0 && !this.scheduled) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  private commit(batch: QueuedWrite[]): void {
    const durable = batch.some((w) => w.durable);
    const tx = this.statements();
    const results: WriteResult[] = [];
    const touched = new Set<string>();
    const touch: Touch = (destination) => touched.add(destination);
    try {
      if (durable !== this.full) {
        (durable ? tx.syncFull : tx.syncNormal).run();
        this.full = durable;
      }
      tx.begin.run();
      if (!this.runOptimistically(batch, touch, results)) {
        // A write failed: undo the batch and run it again, each write in its own savepoint, so
        // only the failing one is rolled back.
        tx.rollback.run();
        results.length = 0;
        tx.begin.run();
        this.runIsolated(batch, touch, results);
      }
      tx.commit.run();
    } catch (error) {
      if (this.db.inTransaction) {
        try {
          tx.rollback.run();
        } catch {
          // the connection is broken; the rejection below reports the cause
        }
      }
      this.rejectAll(batch, error);
      return;
    }
    this.commits += 1;
    this.writes += batch.length;
    batch.forEach((write, i) => {
      const result = results[i]!;
      if (result.ok) write.resolve(result.value);
      else write.reject(result.error);
    });
    if (touched.size > 0) this.onCommitted(touched);
  }

  /** Runs every write in the open transaction; false as soon as one throws. */
  private runOptimistically(batch: readonly QueuedWrite[], touch: Touch, results: WriteResult[]): boolean {
    for (const write of batch) {
      try {
        results.push({ ok: true, value: write.run(touch) });
      } catch {
        return false;
      }
    }
    return true;
  }

  private runIsolated(batch: readonly QueuedWrite[], touch: Touch, results: WriteResult[]): void {
    const tx = this.statements();
    for (const write of batch) {
      tx.savepoint.run();
      try {
        const value = write.run(touch);
        tx.release.run();
        results.push({ ok: true, value });
      } catch (error) {
        tx.rollbackTo.run();
        tx.release.run();
        results.push({ ok: false, error });
      }
    }
  }

  private statements(): TransactionStatements {
    this.tx ??= {
      begin: this.db.prepare('BEGIN IMMEDIATE'),
      commit: this.db.prepare('COMMIT'),
      rollback: this.db.prepare('ROLLBACK'),
      savepoint: this.db.prepare('SAVEPOINT w'),
      release: this.db.prepare('RELEASE w'),
      rollbackTo: this.db.prepare('ROLLBACK TO w'),
      syncFull: this.db.prepare('PRAGMA synchronous = FULL'),
      syncNormal: this.db.prepare('PRAGMA synchronous = NORMAL'),
    };
    return this.tx;
  }

  private rejectAll(batch: readonly QueuedWrite[], cause: unknown): void {
    const error = new BackendError(`the store could not commit: ${(cause as Error)?.message ?? cause}`, {
      cause,
    });
    for (const write of batch) write.reject(error);
  }
}
