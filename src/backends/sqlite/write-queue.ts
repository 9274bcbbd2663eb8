import { BackendError } from '../../errors.js';
import type { SqliteDatabase, SqliteStatement } from './database.js';
import type { WalSync } from './wal-sync.js';

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
 * Durable writes (ingest, dead-lettering, replay) settle only once on disk; bookkeeping (claims,
 * lease renewals, completions) settles at the commit: it survives a process crash, and on power
 * loss the worst case is that a delivery is attempted again. WAL keeps either way consistent,
 * and the next sync makes everything before it durable too. With a `WalSync` (file stores) every
 * commit skips SQLite's own fsync and durable writes wait for `WalSync.sync()`, which runs off
 * the event loop; without one (in-memory stores) a durable batch commits with
 * `synchronous=FULL` and a bookkeeping one with `synchronous=NORMAL`.
 */
export class WriteQueue {
  private queue: QueuedWrite[] = [];
  /** Durable writes that arrived while a sync ran: they commit together once it ends. */
  private held: QueuedWrite[] = [];
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
    private readonly walSync: WalSync | null = null,
  ) {}

  /** Runs `run` inside the next group transaction; resolves with its result after the commit. */
  write<T>(run: (touch: Touch) => T, durable: boolean): Promise<T> {
    if (this.closed) return Promise.reject(new BackendError('the store is closed'));
    return new Promise<T>((resolve, reject) => {
      const write: QueuedWrite = { run, durable, resolve: resolve as (value: unknown) => void, reject };
      if (durable && this.walSync?.running) {
        // It could not be acknowledged before the sync after the running one anyway: waiting for
        // the running one to end lets every durable write meanwhile share one commit.
        if (this.held.length === 0) {
          void this.walSync.finished().then(() => {
            this.queue.push(...this.held);
            this.held = [];
            this.schedule();
          });
        }
        this.held.push(write);
        return;
      }
      this.queue.push(write);
      this.schedule();
    });
  }

  /** Resolves once every write queued so far has been committed. */
  async drain(): Promise<void> {
    if (this.scheduled || this.queue.length > 0 || this.held.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    await this.walSync?.drained();
  }

  /** Transactions committed and writes they carried, since the store opened. */
  get stats(): { commits: number; writes: number } {
    return { commits: this.commits, writes: this.writes };
  }

  /** Refuses new writes; already queued ones still run. */
  close(): void {
    this.closed = true;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    if (batch.length > 0) this.commit(batch);
    if (this.queue.length === 0 && this.held.length === 0 && !this.scheduled) {
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
      if (!this.walSync && durable !== this.full) {
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
    const synced = durable && this.walSync ? this.walSync.sync() : null;
    batch.forEach((write, i) => {
      const result = results[i]!;
      if (!result.ok) write.reject(result.error);
      else if (synced && write.durable) {
        synced.then(
          () => write.resolve(result.value),
          (error: unknown) => write.reject(error),
        );
      } else write.resolve(result.value);
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
