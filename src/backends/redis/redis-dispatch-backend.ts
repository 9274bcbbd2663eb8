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
  DispatchHealth,
} from '../backend.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import { RedisLink, redact, type LinkState } from './connection.js';
import { HeldJobs } from './held-jobs.js';
import { JobClaimer } from './job-claimer.js';
import { JobFetcher } from './job-fetcher.js';
import {
  resolveRedisDispatchOptions,
  type RedisDispatchOptions,
  type ResolvedRedisDispatchOptions,
} from './options.js';
import { DestinationQueues } from './queues.js';
import { Reconciler } from './reconciler.js';
import { WorkSignal } from './work-signal.js';

export type { RedisDispatchOptions } from './options.js';

/**
 * The `redis` dispatch mode: PostgreSQL (the `DispatchSource`) stays the record of every event,
 * delivery, lease and dead letter; BullMQ queues in Redis (one per destination, one job per
 * delivery, job id derived from the delivery id) carry the work between processes.
 *
 * - Whatever the store makes claimable (publish, retry, release, replay, the next delivery of
 *   an ordered key) is added to Redis — delayed until its time for a retry.
 * - `claim` fetches jobs by hand, leases exactly those deliveries in the store, drops jobs whose
 *   delivery is no longer claimable, and tops a claim Redis could not fill up from the store:
 *   the store's clock decides what is due, so nothing waits for Redis to catch up.
 * - Settling goes to the store first, then the job follows (finished, delayed, put back).
 * - A reconciler re-enqueues what Redis lost; while Redis is unreachable, workers claim from
 *   the store directly and `dispatchHealth()` answers `degraded`.
 */
export class RedisDispatchBackend implements Backend {
  readonly kind: string;
  readonly deadLetters: DeadLetterStore;

  private readonly options: ResolvedRedisDispatchOptions;
  private link: RedisLink | null = null;
  private queues: DestinationQueues | null = null;
  private claimer: JobClaimer | null = null;
  private held: HeldJobs;
  private reconciler: Reconciler | null = null;
  private signal: WorkSignal | null = null;
  private readonly listeners = new Set<WorkListener>();
  private readonly pendingAdds = new Set<Promise<void>>();
  private readonly unsubscribe: (() => void)[] = [];
  private opening: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private fallbackWarned = false;

  constructor(options: RedisDispatchOptions) {
    this.options = resolveRedisDispatchOptions(options);
    this.kind = `${options.store.kind}+redis`;
    this.deadLetters = options.store.deadLetters;
    this.held = new HeldJobs(this.options.clock, this.options.logger);
  }

  private get store() {
    return this.options.store;
  }

  open(): Promise<void> {
    this.opening ??= this.start();
    return this.opening;
  }

  private async start(): Promise<void> {
    const { store, logger, prefix, clock } = this.options;
    await store.open();
    this.unsubscribe.push(
      store.onScheduled((deliveries) => this.enqueue(deliveries)),
      // While Redis is down, the store's own signal (LISTEN/NOTIFY) wakes the dispatcher.
      store.onWork((destinations) => {
        if (!this.usable()) this.emit(destinations);
      }),
    );
    const link = new RedisLink(this.options.redisUrl, logger);
    this.link = link;
    try {
      await link.connect(this.options.connectAttempts, this.options.connectRetryDelayMs);
    } catch (error) {
      for (const off of this.unsubscribe.splice(0)) off();
      await store.close().catch(() => undefined);
      throw error;
    }
    const queues = new DestinationQueues(link.client, prefix, clock);
    this.queues = queues;
    this.claimer = new JobClaimer({
      store,
      queues,
      fetcher: new JobFetcher(queues),
      held: this.held,
      clock,
      logger,
    });
    this.signal = new WorkSignal(link, `${prefix}:work`, (destinations) => this.emit(destinations));
    this.signal.start();
    const markerKey = `${prefix}:dispatch-marker`;
    this.reconciler = new Reconciler({
      store,
      queues,
      marker: {
        exists: async () => (await link.client.exists(markerKey)) === 1,
        set: async () => void (await link.client.set(markerKey, String(Date.now()))),
      },
      clock,
      intervalMs: this.options.reconcileIntervalMs,
      logger,
      usable: () => this.usable(),
      refilled: (deliveries) => this.announce(deliveries),
    });
    link.onChange((state) => this.linkChanged(state));
    this.reconciler.start();
  }

  close(): Promise<void> {
    this.closing ??= this.stop();
    return this.closing;
  }

  private async stop(): Promise<void> {
    await this.opening?.catch(() => undefined);
    for (const off of this.unsubscribe.splice(0)) off();
    this.listeners.clear();
    await this.reconciler?.stop();
    this.signal?.close();
    await Promise.allSettled([...this.pendingAdds]);
    // Jobs still held keep their locks until they run out; then they wait again for others.
    this.held.clear();
    await this.queues?.close();
    await this.link?.close();
    await this.store.close();
  }

  /** Whether work goes through Redis right now. */
  private usable(): boolean {
    return this.link !== null && this.link.up && this.queues !== null && this.closing === null;
  }

  dispatchHealth(): DispatchHealth {
    const url = redact(this.options.redisUrl);
    if (this.usable()) return { status: 'healthy', message: `dispatching through Redis at ${url}` };
    if (this.closing) return { status: 'unhealthy', message: 'dispatch closed' };
    if (this.link === null) return { status: 'degraded', message: `not connected to Redis at ${url} yet` };
    const why = this.link?.error?.message;
    return {
      status: 'degraded',
      message: `Redis at ${url} unreachable${why ? ` (${why})` : ''}: workers claim from the store directly`,
    };
  }

  // --- work in -------------------------------------------------------------------------------

  private enqueue(deliveries: readonly ScheduledDelivery[]): void {
    if (deliveries.length === 0) return;
    if (!this.usable()) return; // the store's onWork wakes the dispatcher; the reconciler refills later
    const added = this.queues!.add(deliveries).then(
      () => this.announce(deliveries),
      (error: unknown) => {
        this.options.logger?.warn(
          { err: error, deliveries: deliveries.length },
          'could not enqueue deliveries in Redis; the reconciler will',
        );
        this.emit(destinationsOf(deliveries));
      },
    );
    this.pendingAdds.add(added);
    void added.finally(() => this.pendingAdds.delete(added));
  }

  /** The jobs are in Redis: wake this process's dispatcher and tell the others. */
  private announce(deliveries: readonly ScheduledDelivery[]): void {
    const destinations = destinationsOf(deliveries);
    this.emit(destinations);
    this.signal?.publish(destinations);
  }

  private emit(destinations: readonly string[] | 'all'): void {
    for (const listener of [...this.listeners]) listener(destinations);
  }

  private linkChanged(state: LinkState): void {
    const { logger } = this.options;
    if (state === 'down') {
      logger?.warn(
        { err: this.link?.error ?? undefined },
        `Redis at ${redact(this.options.redisUrl)} unreachable: workers claim from the store directly`,
      );
    } else {
      this.fallbackWarned = false;
      logger?.info(`Redis at ${redact(this.options.redisUrl)} reachable again: dispatching through Redis`);
      this.reconciler?.triggerFull();
    }
    this.emit('all');
  }

  onWork(listener: WorkListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // --- claiming ------------------------------------------------------------------------------

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    if (!this.usable()) return this.claimFromStore(request);
    return this.claimer!.claim(request, () => this.usable());
  }

  private async claimFromStore(request: ClaimRequest): Promise<ClaimResult> {
    if (!this.fallbackWarned && this.opening !== null && this.closing === null) {
      this.fallbackWarned = true;
      this.options.logger?.warn('Redis unavailable: claiming from the store directly');
    }
    return this.store.claim(request);
  }

  async extendLeases(leases: readonly Lease[], leaseMs: number): Promise<string[]> {
    const lost = await this.store.extendLeases(leases, leaseMs);
    this.held.forget(lost);
    const lostSet = new Set(lost);
    const kept = leases.map((l) => l.deliveryId).filter((id) => !lostSet.has(id));
    if (this.usable()) await this.held.extend(kept, leaseMs);
    return lost;
  }

  nextDueAt(destination: string): Promise<number | null> {
    return this.store.nextDueAt(destination);
  }

  // --- settling: the store first, then the job -----------------------------------------------

  async complete(lease: Lease, attempt: AttemptReport): Promise<void> {
    await this.settled(lease, () => this.store.complete(lease, attempt));
    await this.held.finish(lease.deliveryId);
  }

  async retry(
    lease: Lease,
    attempt: AttemptReport,
    runAt: number,
    options?: { charge?: boolean },
  ): Promise<void> {
    await this.settled(lease, () => this.store.retry(lease, attempt, runAt, options));
    await this.held.delay(lease.deliveryId, runAt);
  }

  async deadLetter(lease: Lease, attempt: AttemptReport, policy: DeadLetterKeyPolicy): Promise<void> {
    await this.settled(lease, () => this.store.deadLetter(lease, attempt, policy));
    await this.held.finish(lease.deliveryId);
  }

  async release(lease: Lease): Promise<void> {
    await this.settled(lease, () => this.store.release(lease));
    await this.held.putBack(lease.deliveryId);
  }

  /**
   * Runs a store write; if it fails, the job is let go as it is: its lock runs out and BullMQ
   * hands it out again, and the store decides then whether it is still claimable.
   */
  private async settled(lease: Lease, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (error) {
      this.held.forget([lease.deliveryId]);
      throw error;
    }
  }

  // --- everything else is the store's --------------------------------------------------------

  registerDestination(destination: DestinationSpec): Promise<void> {
    return this.store.registerDestination(destination);
  }

  retireDestination(name: string): Promise<boolean> {
    return this.store.retireDestination(name);
  }

  listDestinations(): Promise<DestinationRecord[]> {
    return this.store.listDestinations();
  }

  publish(events: readonly EventEnvelope[], options: PublishOptions): Promise<PublishResult[]> {
    return this.store.publish(events, options);
  }

  getEvent(eventId: string): Promise<EventRecord | null> {
    return this.store.getEvent(eventId);
  }

  queueStats(): Promise<QueueStats> {
    return this.store.queueStats();
  }

  purge(request: PurgeRequest): Promise<PurgeResult> {
    return this.store.purge(request);
  }

  ping(): Promise<void> {
    return this.store.ping();
  }

  /** Runs a full reconciliation pass now; answers how many deliveries were put back into Redis. */
  async reconcile(): Promise<number> {
    await this.open();
    return this.reconciler!.pass(true);
  }
}

function destinationsOf(deliveries: readonly ScheduledDelivery[]): string[] {
  return [...new Set(deliveries.map((d) => d.destination))];
}
