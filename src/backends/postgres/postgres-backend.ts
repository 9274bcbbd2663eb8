import { randomBytes } from 'node:crypto';
import type { Clock } from '../../clock.js';
import { BackendError } from '../../errors.js';
import type { EventEnvelope } from '../../event.js';
import type {
  AttemptReport,
  ClaimedDelivery,
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
import type { DispatchSource, ScheduledDelivery } from '../dispatch-source.js';
import * as claims from './claim.js';
import { CompleteQueue } from './complete-queue.js';
import type { PgContext } from './context.js';
import { Database, type Sql } from './database.js';
import * as deadLetters from './dead-letters.js';
import { getEvent, queueStats } from './inspect.js';
import { migrate } from './migrations.js';
import { channelOf, WorkListener as ChannelListener, WorkNotifier } from './notify.js';
import { resolveOptions, type PostgresBackendOptions, type ResolvedPostgresOptions } from './options.js';
import { PublishQueue } from './publish-queue.js';
import { purge } from './purge.js';
import { listDestinations, RegistryCache, retireDestination, upsertDestination } from './registry.js';
import * as settle from './settle.js';

export type { PostgresBackendOptions } from './options.js';

type ScheduledListener = (deliveries: readonly ScheduledDelivery[]) => void;

interface Opened {
  readonly ctx: PgContext;
  readonly publishes: PublishQueue;
  readonly completions: CompleteQueue;
  readonly notifier: WorkNotifier;
  readonly listener: ChannelListener;
}

/**
 * PostgreSQL as the system of record. Ingest is group-committed (every `publish` of one
 * event-loop turn shares a transaction of multi-row statements); workers lease due deliveries
 * with `FOR UPDATE SKIP LOCKED`; other processes are woken through LISTEN/NOTIFY. Retryable
 * PostgreSQL failures are tried again a few times, then surface as `BackendError`.
 */
export class PostgresBackend implements DispatchSource {
  readonly kind = 'postgres';
  readonly deadLetters: DeadLetterStore;

  private readonly options: ResolvedPostgresOptions;
  private readonly clock: Clock;
  private readonly origin = randomBytes(8).toString('base64url');
  private tokenCounter = 0;
  private opened: Opened | null = null;
  private opening: Promise<void> | null = null;
  private closed = false;
  private readonly workListeners = new Set<WorkListener>();
  private readonly scheduledListeners = new Set<ScheduledListener>();

  constructor(options: PostgresBackendOptions) {
    this.options = resolveOptions(options);
    this.clock = this.options.clock;
    this.deadLetters = {
      list: async (query = {}) =>
        this.read('list dead letters', (sql) => deadLetters.listDeadLetters(sql, query)),
      get: async (id) => this.read('get dead letter', (sql) => deadLetters.getDeadLetter(sql, id)),
      replay: async (selector) => {
        const { ctx } = this.state();
        const { ids, scheduled } = await ctx.db.transaction('replay dead letters', (sql) =>
          deadLetters.replayDeadLetters(sql, ctx.schema, ctx.registry, selector, this.clock.now()),
        );
        this.committed(scheduled);
        return { replayed: ids.length, ids };
      },
      delete: async (selector) => {
        const { ctx } = this.state();
        const { ids, scheduled } = await ctx.db.transaction('delete dead letters', (sql) =>
          deadLetters.deleteDeadLetters(sql, ctx.schema, selector, this.clock.now()),
        );
        this.committed(scheduled);
        return { deleted: ids.length, ids };
      },
      stats: async () =>
        this.read('dead-letter stats', (sql) => deadLetters.deadLetterStats(sql, this.clock.now())),
    };
  }

  /** The schema this backend keeps its tables in. */
  get schema(): string {
    return this.options.schema;
  }

  /** Group-commit figures for ingest: transactions committed and the `publish` calls they carried. */
  get stats(): { commits: number; writes: number } {
    return this.opened?.publishes.stats ?? { commits: 0, writes: 0 };
  }

  /** Times the LISTEN connection was established since open (reconnections included). */
  get listenerConnections(): number {
    return this.opened?.listener.connected ?? 0;
  }

  async open(): Promise<void> {
    if (this.closed) throw new BackendError('the store is closed');
    this.opening ??= this.connect().catch((error: unknown) => {
      this.opening = null;
      throw error;
    });
    return this.opening;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.opening?.catch(() => undefined);
    const opened = this.opened;
    if (!opened) return;
    await Promise.all([opened.publishes.close(), opened.completions.close()]);
    await opened.listener.stop();
    await opened.ctx.bookkeeping.close();
    await opened.ctx.db.close();
    this.workListeners.clear();
    this.scheduledListeners.clear();
  }

  async registerDestination(destination: DestinationSpec): Promise<void> {
    await this.state().ctx.db.transaction('register destination', (sql) =>
      upsertDestination(sql, destination, this.clock.now()),
    );
  }

  async retireDestination(name: string): Promise<boolean> {
    return this.state().ctx.db.transaction('retire destination', (sql) =>
      retireDestination(sql, name, this.clock.now()),
    );
  }

  async listDestinations(): Promise<DestinationRecord[]> {
    return this.read('list destinations', listDestinations);
  }

  async publish(events: readonly EventEnvelope[], options: PublishOptions): Promise<PublishResult[]> {
    if (events.length === 0) return [];
    return this.state().publishes.publish({ events, options });
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const { ctx } = this.state();
    return ctx.bookkeeping.run(`claim ${request.destination}`, (sql) =>
      claims.claimDeliveries(sql, this.leaseTerms(request.destination, request.leaseMs), request.limit),
    );
  }

  async claimByIds(request: {
    readonly destination: string;
    readonly deliveryIds: readonly string[];
    readonly leaseMs: number;
    readonly workerId: string;
  }): Promise<ClaimedDelivery[]> {
    const { ctx } = this.state();
    return ctx.bookkeeping.run(`claim ${request.destination} by id`, (sql) =>
      claims.claimByIds(sql, this.leaseTerms(request.destination, request.leaseMs), request.deliveryIds),
    );
  }

  async schedulable(request: {
    readonly destination?: string;
    readonly dueBefore: number;
    readonly limit: number;
    readonly afterId?: string;
  }): Promise<ScheduledDelivery[]> {
    return this.read('list schedulable deliveries', (sql) => claims.schedulable(sql, request));
  }

  async extendLeases(leases: readonly Lease[], leaseMs: number): Promise<string[]> {
    if (leases.length === 0) return [];
    return this.state().ctx.bookkeeping.run('extend leases', (sql) =>
      claims.extendLeases(sql, leases, this.clock.now() + leaseMs),
    );
  }

  async complete(lease: Lease, attempt: AttemptReport): Promise<void> {
    return this.state().completions.complete(lease, attempt);
  }

  async retry(
    lease: Lease,
    attempt: AttemptReport,
    runAt: number,
    options: { charge?: boolean } = {},
  ): Promise<void> {
    const { ctx } = this.state();
    const scheduled = await ctx.bookkeeping.run('retry', (sql) =>
      settle.retryDelivery(sql, lease, attempt, runAt, this.clock.now(), options.charge ?? true),
    );
    this.committed(scheduled);
  }

  async deadLetter(lease: Lease, attempt: AttemptReport, policy: DeadLetterKeyPolicy): Promise<void> {
    const { ctx } = this.state();
    const next = await ctx.db.transaction('dead-letter', (sql) =>
      settle.deadLetterDelivery(sql, ctx.schema, lease, attempt, policy, this.clock.now()),
    );
    this.committed(next);
  }

  async release(lease: Lease): Promise<void> {
    const { ctx } = this.state();
    const scheduled = await ctx.bookkeeping.run('release', (sql) =>
      settle.releaseDelivery(sql, lease, this.clock.now()),
    );
    this.committed(scheduled);
  }

  async nextDueAt(destination: string): Promise<number | null> {
    return this.read('next due time', (sql) => claims.nextDueAt(sql, destination));
  }

  onWork(listener: WorkListener): () => void {
    this.workListeners.add(listener);
    return () => this.workListeners.delete(listener);
  }

  onScheduled(listener: ScheduledListener): () => void {
    this.scheduledListeners.add(listener);
    return () => this.scheduledListeners.delete(listener);
  }

  async getEvent(eventId: string): Promise<EventRecord | null> {
    return this.read('get event', (sql) => getEvent(sql, eventId));
  }

  async queueStats(): Promise<QueueStats> {
    return this.read('queue stats', (sql) => queueStats(sql, this.clock.now()));
  }

  async purge(request: PurgeRequest): Promise<PurgeResult> {
    return this.state().ctx.db.run('purge', (sql) => purge(sql, request));
  }

  async ping(): Promise<void> {
    await this.read('ping', (sql) => sql.query('SELECT 1'));
  }

  private async connect(): Promise<void> {
    const o = this.options;
    const db = new Database({
      connectionString: o.connectionString,
      schema: o.schema,
      poolSize: o.poolSize,
      tries: o.operationTries,
      retryDelayMs: o.operationRetryDelayMs,
      onRecovered: () => this.recovered(),
    });
    const bookkeeping = new Database({
      connectionString: o.connectionString,
      schema: o.schema,
      poolSize: Math.max(2, Math.ceil(o.poolSize / 2)),
      tries: o.operationTries,
      retryDelayMs: o.operationRetryDelayMs,
      onRecovered: () => this.recovered(),
      synchronousCommit: false,
    });
    let listener: ChannelListener | null = null;
    try {
      await db.connect(o.connectAttempts, o.connectRetryDelayMs);
      await migrate(db, o.schema, this.clock.now());
      const channel = channelOf(o.schema);
      const ctx: PgContext = {
        db,
        bookkeeping,
        schema: o.schema,
        clock: this.clock,
        registry: new RegistryCache(),
        notify: { channel, origin: this.origin },
      };
      listener = new ChannelListener({
        connectionString: o.connectionString,
        schema: o.schema,
        channel,
        origin: this.origin,
        onWork: (destinations) => this.emitWork(destinations),
      });
      await listener.start();
      if (this.closed) throw new BackendError('the store is closed');
      this.opened = {
        ctx,
        publishes: new PublishQueue(ctx, (outcome) => this.committed(outcome.scheduled, outcome.notified)),
        completions: new CompleteQueue(ctx, (promoted) => this.committed(promoted)),
        notifier: new WorkNotifier(db, channel, this.origin),
        listener,
      };
    } catch (error) {
      await listener?.stop();
      await bookkeeping.close();
      await db.close();
      throw error instanceof BackendError
        ? error
        : new BackendError(`could not open the PostgreSQL store: ${String(error)}`, { cause: error });
    }
  }

  private state(): Opened {
    if (!this.opened) throw new BackendError(this.closed ? 'the store is closed' : 'the store is not open');
    return this.opened;
  }

  private async read<T>(what: string, work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.state().ctx.db.run(what, work);
  }

  private leaseTerms(destination: string, leaseMs: number): claims.LeaseTerms {
    this.tokenCounter += 1;
    return {
      destination,
      now: this.clock.now(),
      leaseMs,
      tokenPrefix: `${this.origin}.${this.tokenCounter}.`,
    };
  }

  /**
   * After a commit that made deliveries claimable: local listeners at once, other processes by
   * NOTIFY (sent after the callers are answered, unless the write sent it itself).
   */
  private committed(scheduled: readonly ScheduledDelivery[], notified = false): void {
    if (scheduled.length === 0) return;
    const destinations = [...new Set(scheduled.map((s) => s.destination))];
    // A write that sent its NOTIFY in its own statement needs no second one.
    if (!notified) this.opened?.notifier.touch(destinations);
    for (const listener of this.scheduledListeners) listener(scheduled);
    this.emitWork(destinations);
  }

  /**
   * The store answers again after an operation lost its connection. Such a write may have
   * committed unannounced (its reply was lost and the retry found the work done, or it failed
   * for good), and NOTIFYs may have been lost: local runners and other processes look again.
   */
  private recovered(): void {
    if (this.closed || !this.opened) return;
    this.opened.notifier.touchAll();
    this.emitWork('all');
  }

  private emitWork(destinations: readonly string[] | 'all'): void {
    for (const listener of this.workListeners) listener(destinations);
  }
}
