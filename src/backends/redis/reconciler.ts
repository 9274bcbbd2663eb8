import type { CancelTimer, Clock } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { DispatchSource, ScheduledDelivery } from '../dispatch-source.js';
import type { DestinationQueues } from './queues.js';

/** Deliveries read from the store per page. */
const PAGE_SIZE = 1000;
/** Most deliveries a routine pass looks at; the next one goes on from there. */
const ROUTINE_PASS_LIMIT = 1000;

export interface ReconcilerDeps {
  readonly store: DispatchSource;
  readonly queues: DestinationQueues;
  /** A key this process sets in Redis: when it is gone, Redis lost its data (flush, restart). */
  readonly marker: { exists(): Promise<boolean>; set(): Promise<void> };
  readonly clock: Clock;
  readonly intervalMs: number;
  readonly logger: Logger | null;
  /** Whether Redis can be used now (a pass while it is down is skipped). */
  readonly usable: () => boolean;
  /** Called with the deliveries a pass put back into Redis. */
  readonly refilled: (deliveries: readonly ScheduledDelivery[]) => void;
}

/**
 * Compares the store of record with Redis and re-enqueues every delivery that falls due before
 * the next pass but has no job in Redis, so a Redis restart without persistence, a FLUSHALL or
 * an eviction loses nothing. A pass reads the store page by page and checks the jobs with one
 * pipelined EXISTS per page.
 *
 * To stay cheap under a large backlog, a routine pass looks at no more than 1000 deliveries and
 * the next one goes on from there; a full pass runs at start, after a reconnect, and whenever
 * the marker key is gone (Redis lost its data).
 */
export class Reconciler {
  private cancelTimer: CancelTimer | null = null;
  private running: Promise<number> | null = null;
  private again = false;
  private cursor: string | undefined;
  private stopped = true;
  private fullPassDue = true;

  constructor(private readonly deps: ReconcilerDeps) {}

  /** Runs a pass at once, then every `intervalMs`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.trigger();
  }

  /** Runs a full pass as soon as possible (coalesced with one already running). */
  triggerFull(): void {
    this.fullPassDue = true;
    this.trigger();
  }

  private trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.running = this.pass()
      .catch((error: unknown) => {
        this.fullPassDue = true;
        this.deps.logger?.warn({ err: error }, 'reconciling Redis with the store failed; trying again');
        return 0;
      })
      .finally(() => {
        this.running = null;
        if (this.stopped) return;
        if (this.again) {
          this.again = false;
          this.trigger();
          return;
        }
        this.cancelTimer = this.deps.clock.setTimer(() => {
          this.cancelTimer = null;
          this.trigger();
        }, this.deps.intervalMs);
      });
  }

  /** Stops the timer and waits for a pass under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    await this.running;
  }

  /** One pass (full when `full`, or when Redis lost its data); answers how many deliveries it re-enqueued. */
  async pass(full = false): Promise<number> {
    if (!this.deps.usable()) return 0;
    const { store, clock, marker } = this.deps;
    if (this.fullPassDue || !(await marker.exists())) full = true;
    if (full) {
      this.fullPassDue = false;
      this.cursor = undefined;
      // Set before the pass: a flush during it removes the marker again and the next pass is full.
      await marker.set();
    }
    const limit = full ? Number.POSITIVE_INFINITY : ROUTINE_PASS_LIMIT;
    const dueBefore = clock.now() + this.deps.intervalMs;
    let seen = 0;
    let added = 0;
    while (seen < limit) {
      const page = await store.schedulable({ dueBefore, limit: PAGE_SIZE, afterId: this.cursor });
      seen += page.length;
      if (page.length > 0) {
        added += await this.repair(page);
        this.cursor = page[page.length - 1]!.deliveryId;
      }
      if (page.length < PAGE_SIZE) {
        this.cursor = undefined;
        break;
      }
    }
    if (added > 0) this.deps.logger?.info({ added }, 're-enqueued deliveries that Redis did not hold');
    return added;
  }

  private async repair(page: readonly ScheduledDelivery[]): Promise<number> {
    const byDestination = new Map<string, ScheduledDelivery[]>();
    for (const d of page) {
      const list = byDestination.get(d.destination);
      if (list) list.push(d);
      else byDestination.set(d.destination, [d]);
    }
    const lost: ScheduledDelivery[] = [];
    for (const [destination, list] of byDestination) {
      const missing = new Set(
        await this.deps.queues.missing(
          destination,
          list.map((d) => d.deliveryId),
        ),
      );
      lost.push(...list.filter((d) => missing.has(d.deliveryId)));
    }
    if (lost.length === 0) return 0;
    await this.deps.queues.add(lost);
    this.deps.refilled(lost);
    return lost.length;
  }
}
