import type { Clock } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { ClaimedDelivery, ClaimRequest, ClaimResult } from '../backend.js';
import type { DispatchSource } from '../dispatch-source.js';
import type { HeldJob, HeldJobs } from './held-jobs.js';
import type { FetchResult, JobFetcher } from './job-fetcher.js';
import type { DestinationQueues } from './queues.js';

/** After the store failed to top a claim up, look again this much later, ms. */
const TOP_UP_ERROR_BACKOFF_MS = 1000;

export interface JobClaimerDeps {
  readonly store: DispatchSource;
  readonly queues: DestinationQueues;
  readonly fetcher: JobFetcher;
  readonly held: HeldJobs;
  readonly clock: Clock;
  readonly logger: Logger | null;
}

type FetchedJob = FetchResult['jobs'][number];

/**
 * A claim while Redis is up: fetch up to `limit` jobs, lease exactly their deliveries in the
 * store, and settle what the store would not lease (delayed again if not due yet, otherwise
 * finished). When Redis ran dry before the limit, the rest is claimed from the store directly:
 * the store's clock decides what is due (a retry whose delayed job BullMQ has not promoted yet,
 * a lease that expired, a job lost in a flush), and that claim answers the next due time.
 */
export class JobClaimer {
  constructor(private readonly deps: JobClaimerDeps) {}

  async claim(request: ClaimRequest, redisUsable: () => boolean): Promise<ClaimResult> {
    const { store, fetcher, clock, logger } = this.deps;
    // Sized as late as possible: attempts settling in this turn free their slots first.
    if (typeof request.limit === 'function') await new Promise<void>((resolve) => setImmediate(resolve));
    const limit = typeof request.limit === 'function' ? request.limit() : request.limit;
    if (limit <= 0) return { deliveries: [], nextDueAt: null };
    const { destination, leaseMs, workerId } = request;
    let fetched: FetchResult;
    try {
      fetched = await fetcher.fetch(destination, limit, leaseMs);
    } catch (error) {
      logger?.warn({ err: error, destination }, 'fetching jobs from Redis failed; claiming from the store');
      return store.claim({ ...request, limit });
    }
    const ids = fetched.jobs.map((j) => j.deliveryId);
    const topUp = fetched.drained ? limit - fetched.jobs.length : 0;
    const [byId, extra] = await Promise.allSettled([
      ids.length > 0
        ? store.claimByIds({ destination, deliveryIds: ids, leaseMs, workerId })
        : Promise.resolve([]),
      topUp > 0 ? store.claim({ destination, limit: topUp, leaseMs, workerId }) : Promise.resolve(null),
    ]);
    if (byId.status === 'rejected') {
      // Nothing was leased by id: the jobs go back for whoever claims next.
      await Promise.all(fetched.jobs.map((j) => this.putBack(j)));
      if (extra.status === 'fulfilled' && extra.value && extra.value.deliveries.length > 0) {
        this.removeJobs(destination, extra.value.deliveries, redisUsable);
        return extra.value;
      }
      throw byId.reason;
    }
    const leased = new Map<string, ClaimedDelivery>();
    for (const d of byId.value) leased.set(d.lease.deliveryId, d);
    const toppedUp = extra.status === 'fulfilled' && extra.value ? extra.value.deliveries : [];
    for (const d of toppedUp) leased.set(d.lease.deliveryId, d);
    const now = clock.now();
    await Promise.all(
      fetched.jobs.map((j) => {
        if (!leased.has(j.deliveryId)) return this.dropStale(j, now);
        this.deps.held.hold(j.deliveryId, j);
        return undefined;
      }),
    );
    this.removeJobs(
      destination,
      toppedUp.filter((d) => !this.deps.held.has(d.lease.deliveryId)),
      redisUsable,
    );

    let nextDueAt: number | null;
    if (extra.status === 'rejected') {
      logger?.warn({ err: extra.reason, destination }, 'topping a claim up from the store failed');
      nextDueAt = now + TOP_UP_ERROR_BACKOFF_MS;
    } else if (extra.value) {
      nextDueAt = extra.value.nextDueAt;
    } else {
      // Redis had at least as many jobs as asked for: if some were stale, claim again at once.
      nextDueAt = leased.size < limit ? now : null;
    }
    return { deliveries: [...leased.values()], nextDueAt };
  }

  /**
   * A job fetched for a delivery the store would not lease: delayed again if the delivery is
   * not due yet, otherwise finished (it is done, leased elsewhere, or waits behind its key).
   */
  private async dropStale(job: FetchedJob, now: number): Promise<void> {
    const { held } = this.deps;
    held.hold(job.deliveryId, job);
    if (job.job.data.runAt > now) await held.delay(job.deliveryId, job.job.data.runAt);
    else await held.finish(job.deliveryId);
  }

  private async putBack(job: FetchedJob & HeldJob): Promise<void> {
    this.deps.held.hold(job.deliveryId, job);
    await this.deps.held.putBack(job.deliveryId);
  }

  /**
   * Deliveries leased from the store directly may still have a job waiting in Redis; remove it
   * so nobody fetches it for nothing (a job another worker holds is left alone).
   */
  private removeJobs(
    destination: string,
    deliveries: readonly ClaimedDelivery[],
    redisUsable: () => boolean,
  ): void {
    if (deliveries.length === 0 || !redisUsable()) return;
    this.deps.queues
      .remove(
        destination,
        deliveries.map((d) => d.lease.deliveryId),
      )
      .catch(() => undefined);
  }
}
