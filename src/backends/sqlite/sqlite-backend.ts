import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../../clock.js';
import { BackendError } from '../../errors.js';
import type { EventEnvelope } from '../../event.js';
import type {
  AttemptReport,
  Backend,
  ClaimRequest,
  ClaimResult,
  DeadLetterKeyPolicy,
  DeadLetterStore,
  DestinationRecord,
  DestinationSpec,
  EventRecord,
  Lease,
  PublishOptions,
  PublishResult,
  PurgeRequest,
  PurgeResult,
  QueueStats,
  WorkListener,
} from '../backend.js';
import { ChangeWatcher } from './change-watcher.js';
import { claimDeliveries, extendLeases, nextDueAt } from './claim.js';
import type { SqliteContext } from './context.js';
import { openDatabase, StatementCache, type SqliteDatabase } from './database.js';
import {
  deadLetterStats,
  deleteDeadLetters,
  getDeadLetter,
  listDeadLetters,
  replayDeadLetters,
} from './dead-letters.js';
import { getEvent, queueStats } from './inspect.js';
import { migrate } from './migrations.js';
import { publishEvents } from './publish.js';
import { purge } from './purge.js';
import { listDestinations, RegistryCache, retireDestination, upsertDestination } from './registry.js';
import { completeDelivery, deadLetterDelivery, releaseDelivery, retryDelivery } from './settle.js';
import { Checkpointer } from './checkpointer.js';
import { WalSync } from './wal-sync.js';
import { WriteQueue, type Touch } from './write-queue.js';
import { WriterLock } from './writer-lock.js';

export interface SqliteBackendOptions {
  /** Database file; created (with its folder) on first use. `:memory:` for a throw-away store. */
  readonly path: string;
  readonly clock?: Clock;
  /** How long a write waits for another process's write lock. default 5000 */
  readonly busyTimeoutMs?: number;
  /** How often to look for commits by other processes. default 10 */
  readonly watchIntervalMs?: number;
  /** How often the checkpointer thread copies the WAL into the database file. default 500 */
  readonly checkpointIntervalMs?: number;
  /**
   * WAL size (pages) from which the checkpointer also rewinds the log, so that it stops growing
   * under steady load. default 1024 (4 MiB of 4 KiB pages)
   */
  readonly walRestartPages?: number;
  /** A WAL file larger than this is truncated when the checkpointer rewinds it. default 67108864 (64 MiB) */
  readonly walLimitBytes?: number;
}

/**
 * The embedded backend: one SQLite file in WAL mode. Writes go through a group-commit queue;
 * reads go straight to the connection. Other processes may share the file.
 */
export class SqliteBackend implements Backend {
  readonly kind = 'sqlite';
  readonly deadLetters: DeadLetterStore;

  private db: SqliteDatabase | null = null;
  private ctx: SqliteContext | null = null;
  private writes: WriteQueue | null = null;
  private watcher: ChangeWatcher | null = null;
  private walSync: WalSync | null = null;
  private checkpointer: Checkpointer | null = null;
  private writerLock: WriterLock | null = null;
  private registry: RegistryCache | null = null;
  private readonly listeners = new Set<WorkListener>();
  private readonly clock: Clock;
  private readonly tokenPrefix = randomBytes(6).toString('base64url');
  private tokenCounter = 0;
  private closed = false;

  constructor(private readonly options: SqliteBackendOptions) {
    this.clock = options.clock ?? systemClock;
    this.deadLetters = {
      list: async (query = {}) => listDeadLetters(this.context(), query),
      get: async (id) => getDeadLetter(this.context(), id),
      replay: async (selector) => {
        const ids = await this.write(
          (touch) => replayDeadLetters(this.context(), this.reg(), selector, touch),
          true,
        );
        return { replayed: ids.length, ids };
      },
      delete: async (selector) => {
        const ids = await this.write((touch) => deleteDeadLetters(this.context(), selector, touch), true);
        return { deleted: ids.length, ids };
      },
      stats: async () => deadLetterStats(this.context()),
    };
  }

  /** Group-commit figures: transactions committed and the writes they carried. */
  get commitStats(): { commits: number; writes: number } {
    return this.writes?.stats ?? { commits: 0, writes: 0 };
  }

  /**
   * The connection's journal mode and how a durable commit reaches the disk: `FULL` (SQLite
   * syncs inside COMMIT) or, for file stores, `WAL fdatasync off the event loop` (see WriteQueue).
   */
  storageSettings(): { journalMode: string; synchronous: string } {
    const db = this.context().db;
    const journalMode = String(db.pragma('journal_mode', { simple: true })).toUpperCase();
    if (this.writes?.syncsOffLoop) return { journalMode, synchronous: 'WAL fdatasync off the event loop' };
    const level = Number(db.pragma('synchronous', { simple: true }));
    return { journalMode, synchronous: ['OFF', 'NORMAL', 'FULL', 'EXTRA'][level] ?? String(level) };
  }

  async open(): Promise<void> {
    if (this.closed) throw new BackendError('the store is closed');
    if (this.db) return;
    const db = openDatabase({ path: this.options.path, busyTimeoutMs: this.options.busyTimeoutMs ?? 5000 });
    try {
      migrate(db);
    } catch (error) {
      db.close();
      throw error;
    }
    this.db = db;
    this.ctx = { db, sql: new StatementCache(db), clock: this.clock };
    this.registry = new RegistryCache(this.ctx);
    if (this.options.path !== ':memory:') this.syncOffLoop(db);
    this.writes = new WriteQueue(db, (touched) => this.emit([...touched]), this.walSync, this.writerLock);
    this.watcher = new ChangeWatcher(db, this.options.watchIntervalMs ?? 10, () => this.emit('all'));
    this.watcher.start();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watcher?.stop();
    if (this.writes) {
      this.writes.close();
      await this.writes.drain();
    }
    this.listeners.clear();
    await this.walSync?.close();
    await this.checkpointer?.stop();
    if (this.db) {
      try {
        // The closing checkpoint syncs the database file before the WAL may be removed.
        this.db.pragma('synchronous = FULL');
        this.db.pragma('wal_checkpoint(PASSIVE)');
      } catch {
        // another process holds the file busy; the checkpoint will happen later
      }
      this.db.close();
    }
    this.db = null;
  }

  registerDestination(destination: DestinationSpec): Promise<void> {
    return this.write(() => upsertDestination(this.context(), destination), true);
  }

  retireDestination(name: string): Promise<boolean> {
    return this.write(() => retireDestination(this.context(), name), true);
  }

  async listDestinations(): Promise<DestinationRecord[]> {
    return listDestinations(this.context());
  }

  publish(events: readonly EventEnvelope[], options: PublishOptions): Promise<PublishResult[]> {
    return this.write(
      (touch) => publishEvents(this.context(), this.reg(), events, options, touch, () => this.nextToken()),
      true,
    );
  }

  claim(request: ClaimRequest): Promise<ClaimResult> {
    return this.write(() => claimDeliveries(this.context(), request, () => this.nextToken()), false);
  }

  extendLeases(leases: readonly Lease[], leaseMs: number): Promise<string[]> {
    return this.write(() => extendLeases(this.context(), leases, leaseMs), false);
  }

  complete(lease: Lease, attempt: AttemptReport): Promise<void> {
    return this.write((touch) => completeDelivery(this.context(), lease, attempt, touch), false);
  }

  retry(
    lease: Lease,
    attempt: AttemptReport,
    runAt: number,
    options: { charge?: boolean } = {},
  ): Promise<void> {
    return this.write(
      (touch) => retryDelivery(this.context(), lease, attempt, runAt, touch, options.charge ?? true),
      false,
    );
  }

  deadLetter(lease: Lease, attempt: AttemptReport, policy: DeadLetterKeyPolicy): Promise<void> {
    return this.write((touch) => deadLetterDelivery(this.context(), lease, attempt, policy, touch), true);
  }

  release(lease: Lease): Promise<void> {
    return this.write((touch) => releaseDelivery(this.context(), lease, touch), false);
  }

  async nextDueAt(destination: string): Promise<number | null> {
    return nextDueAt(this.context(), destination);
  }

  onWork(listener: WorkListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async getEvent(eventId: string): Promise<EventRecord | null> {
    return getEvent(this.context(), eventId);
  }

  async queueStats(): Promise<QueueStats> {
    return queueStats(this.context());
  }

  purge(request: PurgeRequest): Promise<PurgeResult> {
    return this.write(() => purge(this.context(), request), false);
  }

  async ping(): Promise<void> {
    this.context().sql.get('SELECT 1').get();
  }

  /**
   * File stores: checkpoints run on a thread of their own, and durable commits mostly sync the
   * WAL off the event loop (see WriteQueue). If that thread fails, the connection goes back to
   * syncing inside COMMIT and checkpointing itself.
   */
  private syncOffLoop(db: SqliteDatabase): void {
    db.pragma('synchronous = OFF');
    db.pragma('wal_autocheckpoint = 0');
    this.walSync = new WalSync(`${this.options.path}-wal`);
    this.writerLock = new WriterLock();
    this.checkpointer = new Checkpointer({
      path: this.options.path,
      intervalMs: this.options.checkpointIntervalMs ?? 500,
      busyTimeoutMs: this.options.busyTimeoutMs ?? 5000,
      lock: this.writerLock,
      restartFrames: this.options.walRestartPages ?? 1024,
      walLimitBytes: this.options.walLimitBytes ?? 64 * 1024 * 1024,
      restartBusyMs: 20,
      onFailure: () => {
        if (!this.db) return;
        this.writes?.syncInsideCommit();
        this.db.pragma('wal_autocheckpoint = 1000');
      },
    });
  }

  private context(): SqliteContext {
    if (!this.ctx) throw new BackendError(this.closed ? 'the store is closed' : 'the store is not open');
    return this.ctx;
  }

  private reg(): RegistryCache {
    if (!this.registry) throw new BackendError('the store is not open');
    return this.registry;
  }

  private write<T>(run: (touch: Touch) => T, durable: boolean): Promise<T> {
    if (!this.writes)
      return Promise.reject(new BackendError(this.closed ? 'the store is closed' : 'the store is not open'));
    return this.writes.write(run, durable);
  }

  private nextToken(): string {
    this.tokenCounter += 1;
    return `${this.tokenPrefix}.${this.tokenCounter}`;
  }

  private emit(destinations: readonly string[] | 'all'): void {
    for (const listener of this.listeners) listener(destinations);
  }
}
