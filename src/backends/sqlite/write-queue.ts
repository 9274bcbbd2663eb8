import { BackendError } from '../../errors.js';
import type { SqliteDatabase, SqliteStatement } from './database.js';
import type { WalSync } from './wal-sync.js';
import type { WriterLock } from './writer-lock.js';

/** Collects the destinations a batch of writes made work for. */
export type Touch = (destination: string) => void;

interface TransactionStatements {
  readonly begin: SqliteStatement;
  readonly commit: SqliteStatement;
  readonly rollback: SqliteStatement;
  readonly savepoint: SqliteStatement;
  readonly release: SqliteStatement;
  readonly rollbackTo: SqliteStatement;
}

type SyncLevel = 'FULL' | 'NORMAL' | 'OFF';

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
 * and the next sync makes everything before it durable too.
 *
 * With a `WalSync` (file stores), a durable batch commits with `synchronous=OFF` and its writes
 * settle once `WalSync.sync()` (an fdatasync of the WAL on the thread pool) has finished, so the
 * event loop serves requests meanwhile; everything queued while a sync runs commits together
 * right after it; bookkeeping commits at `OFF` too. Each commit holds the store's WriterLock, so
 * it never meets the checkpointer thread rewinding the WAL inside SQLite's busy handler. (Syncing inside COMMIT for a lone awaited
 * write was measured as well: 0.46 against 0.49 ms per write, not worth blocking the loop of a
 * busy service.) Without a `WalSync` (in-memory stores, or after `syncInsideCommit()`), durable
 * batches commit at `FULL` and bookkeeping at `NORMAL`.
 */
export class WriteQueue {
  private queue: QueuedWrite[] = [];
  private scheduled = false;
  /** The connection's `synchronous` setting, once this queue has set it. */
  private level: SyncLevel | null = null;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private tx: TransactionStatements | null = null;
  private commits = 0;
  private writes = 0;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly onCommitted: (touched: ReadonlySet<string>) => void,
    private walSync: WalSync | null = null,
    private lock: WriterLock | null = null,
  ) {}

  /**
   * From now on, durable commits sync inside COMMIT (`synchronous=FULL`) and bookkeeping ones
   * at `NORMAL`, as without a `WalSync`: for when checkpoints can no longer run elsewhere and
   * the connection must checkpoint, and so sync, by itself. Syncs already running still answer.
   */
  syncInsideCommit(): void {
    this.walSync = null;
    this.lock = null;
    this.level = null;
  }

  /** Runs `run` inside the next group transaction; resolves with its result after the commit. */
  write<T>(run: (touch: Touch) => T, durable: boolean): Promise<T> {
    if (this.closed) return Promise.reject(new BackendError('the store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, durable, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Resolves once every write queued so far has been committed. */
  async drain(): Promise<void> {
    if (this.scheduled || this.queue.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    await this.walSync?.drained();
  }

  /** Durable commits may sync the WAL on the thread pool (a `WalSync` is in use). */
  get syncsOffLoop(): boolean {
    return this.walSync !== null;
  }

  /** Transactions committed and writes they carried, since the store opened. */
  get stats(): { commits: number; writes: number } {
    return { commits: this.commits, writes: this.writes };
  }

  /** Refuses new writes; already queued ones still run. */
  close(): void {
    this.closed = true;
  }

  /**
   * The next commit runs on the next turn of the event loop, or, while a WAL sync runs, as soon
   * as it ends: a durable write could not be acknowledged before the sync after the running one
   * anyway, and waiting lets every write meanwhile (ingest and bookkeeping alike) share one
   * commit instead of each turn paying for its own.
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.walSync?.running) void this.walSync.finished().then(() => this.flush());
    else setImmediate(() => this.flush());
  }

  private flush(): void {
    const lock = this.lock;
    if (lock && !lock.tryAcquire()) {
      // The checkpointer is rewinding the WAL: commit as soon as it has (the loop serves meanwhile).
      void lock.whenFree().then(() => this.flush());
      return;
    }
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    try {
      if (batch.length > 0) this.commit(batch);
    } finally {
      lock?.release();
    }
    if (this.queue.length === 0 && !this.scheduled) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  private commit(batch: QueuedWrite[]): void {
    const durable = batch.some((w) => w.durable);
    const offLoop = durable && this.walSync !== null;
    const level: SyncLevel = this.walSync ? 'OFF' : durable ? 'FULL' : 'NORMAL';
    const tx = this.statements();
    const results: WriteResult[] = [];
    const touched = new Set<string>();
    const touch: Touch = (destination) => touched.add(destination);
    try {
      if (level !== this.level) {
        // Not a prepared statement: SQLite applies `PRAGMA synchronous` when it compiles it, so
        // running a prepared one again changes nothing.
        this.db.pragma(`synchronous = ${level}`);
        this.level = level;
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
    const synced = offLoop ? this.walSync?.sync() : null;
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
