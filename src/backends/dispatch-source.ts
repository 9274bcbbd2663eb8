import type { Backend, ClaimedDelivery } from './backend.js';

/** A delivery that is claimable now or will be at `runAt`. */
export interface ScheduledDelivery {
  readonly deliveryId: string;
  readonly destination: string;
  /** When it becomes due (ms since epoch); at or before now when it is due already. */
  readonly runAt: number;
}

/**
 * What a dispatch layer (Redis/BullMQ) needs from the store of record on top of `Backend`: it
 * learns which deliveries became claimable, carries them between processes as jobs, and leases
 * exactly the ones a job names. The store stays the record; the dispatch layer only moves work.
 */
export interface DispatchSource extends Backend {
  /**
   * Leases exactly these deliveries, each only if it is still due and unleased (for ordered
   * destinations: only if it is the head of its key). Answers those leased; skips the rest.
   */
  claimByIds(request: {
    readonly destination: string;
    readonly deliveryIds: readonly string[];
    readonly leaseMs: number;
    readonly workerId: string;
  }): Promise<ClaimedDelivery[]>;

  /**
   * Deliveries that are claimable by `dueBefore` (pending or retrying with their time come,
   * leases expired; ordered destinations: heads only), ordered by delivery id, after `afterId`.
   * The reconciler pages through these to re-enqueue what the dispatch layer lost.
   */
  schedulable(request: {
    readonly destination?: string;
    readonly dueBefore: number;
    readonly limit: number;
    readonly afterId?: string;
  }): Promise<ScheduledDelivery[]>;

  /**
   * Called after every commit that made deliveries claimable: publish, retry, release, replay, and
   * the promotion of the next delivery of a key when its head settles (ordered destinations).
   */
  onScheduled(listener: (deliveries: readonly ScheduledDelivery[]) => void): () => void;
}
