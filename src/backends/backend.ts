import type { EventEnvelope, SteadfastEvent } from '../event.js';

/**
 * The storage contract. A backend speaks in queue terms — publish, claim, complete, retry,
 * dead-letter, release, replay — and exposes no connection, statement or transaction type.
 * Each method is one atomic state change: it happens completely or not at all.
 *
 * Times are milliseconds since the epoch, taken from the clock the backend was built with.
 * Ids are strings whatever the backend stores underneath.
 */
export interface Backend {
  /** Human-readable name: `sqlite`, `postgres`, … */
  readonly kind: string;

  /** Creates or migrates the schema and starts watching for changes. Idempotent. */
  open(): Promise<void>;
  /** Flushes pending writes and releases every resource. Idempotent. */
  close(): Promise<void>;

  /** Records (or updates) a destination in the registry. Ingest fans out to every active one. */
  registerDestination(destination: DestinationSpec): Promise<void>;
  /** Stops fan-out to a destination; its existing deliveries are kept. */
  retireDestination(name: string): Promise<boolean>;
  listDestinations(): Promise<DestinationRecord[]>;

  /**
   * Stores events and one delivery per matching destination, all or nothing, and resolves
   * only once durable. An `eventId` seen inside the dedup window is answered as a duplicate
   * and creates nothing.
   */
  publish(events: readonly EventEnvelope[], options: PublishOptions): Promise<PublishResult[]>;

  /**
   * Leases up to `limit` due deliveries of one destination, oldest due first. A delivery whose
   * lease has expired is due again (`recoveredLease` is then true). For ordered destinations
   * only the head delivery of each key is ever due.
   */
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Pushes the leases forward; answers the ids whose lease this worker no longer holds. */
  extendLeases(leases: readonly Lease[], leaseMs: number): Promise<string[]>;

  /** Settles an attempt as a success. Throws `LeaseLostError` if the lease is not held. */
  complete(lease: Lease, attempt: AttemptReport): Promise<void>;
  /**
   * Records a failed attempt and schedules the next at `runAt`. With `charge: false` (a failed
   * circuit-breaker probe: the destination's fault) the attempt is recorded as `probe_failed`
   * and does not use up the delivery's attempt budget.
   */
  retry(lease: Lease, attempt: AttemptReport, runAt: number, options?: { charge?: boolean }): Promise<void>;
  /** Records the final failed attempt and moves the delivery to the dead-letter queue. */
  deadLetter(lease: Lease, attempt: AttemptReport, policy: DeadLetterKeyPolicy): Promise<void>;
  /** Gives a delivery back without counting the attempt (graceful stop). */
  release(lease: Lease): Promise<void>;

  /** Earliest time a delivery of this destination is due (lease expiry included), or null. */
  nextDueAt(destination: string): Promise<number | null>;

  /** Called when new work may be due: after local writes at once, after other processes' writes soon. */
  onWork(listener: WorkListener): () => void;

  getEvent(eventId: string): Promise<EventRecord | null>;

  readonly deadLetters: DeadLetterStore;

  /** Counts of unfinished work. */
  queueStats(): Promise<QueueStats>;

  /**
   * Deletes events whose every delivery is finished and that were received before
   * `deliveredBefore`, and dedup entries older than `dedupBefore`. Bounded per call.
   */
  purge(request: PurgeRequest): Promise<PurgeResult>;

  /** Cheap round trip proving the store answers. */
  ping(): Promise<void>;

  /**
   * State of a separate dispatch layer (Redis), for backends that have one: `degraded` while
   * work bypasses it (workers claim from the store directly).
   */
  dispatchHealth?(): DispatchHealth;
}

export interface DispatchHealth {
  readonly status: 'healthy' | 'degraded' | 'unhealthy';
  readonly message: string;
}

export type WorkListener = (destinations: readonly string[] | 'all') => void;

/** What happens to later events of a key when one of its deliveries is dead-lettered. */
export type DeadLetterKeyPolicy = 'skip' | 'block';

export interface DestinationSpec {
  readonly name: string;
  readonly types: readonly string[] | '*';
  readonly ordered: boolean;
  readonly onDeadLetter: DeadLetterKeyPolicy;
}

export interface DestinationRecord extends DestinationSpec {
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly retiredAt: number | null;
}

export interface PublishOptions {
  /** An `eventId` seen after `now - dedupWindowMs` is a duplicate. */
  readonly dedupWindowMs: number;
  /**
   * The publishing process's runners, offered each new delivery as it is stored. A backend may
   * ignore it (every delivery is then queued and claimed as usual).
   */
  readonly handOff?: HandOff;
}

/**
 * Direct hand-off: a delivery that a runner of the publishing process has a free slot for is
 * stored already leased to it and handed over with the publish result, instead of being queued,
 * announced and claimed (one statement and one commit fewer per event, and no wait for the
 * claim). Runners accept only while they have caught up with their queue, so nothing jumps
 * ahead of older due work.
 */
export interface HandOff {
  /**
   * Called while a new delivery that is due now (and first in line for its key) is stored:
   * answers the lease length if a runner takes it, or null to queue it as usual.
   */
  take(destination: string): number | null;
  /** The backend runs the publish again from the start (the first try was rolled back): every take so far is void. */
  restart(): void;
}

export interface PublishResult {
  readonly eventId: string;
  readonly duplicate: boolean;
  /** Names of the destinations a delivery was created for (empty for a duplicate). */
  readonly destinations: readonly string[];
  readonly receivedAt: number;
  /** Deliveries stored leased to the runners of `PublishOptions.handOff`, for them to run now. */
  readonly taken?: readonly ClaimedDelivery[];
}

export interface ClaimRequest {
  readonly destination: string;
  /**
   * Most deliveries to lease. A function is called once, as late as the backend can (a backend
   * that batches writes calls it when the claim executes), so slots freed meanwhile count.
   */
  readonly limit: number | (() => number);
  readonly leaseMs: number;
  readonly workerId: string;
}

export interface ClaimResult {
  readonly deliveries: ClaimedDelivery[];
  /**
   * Earliest time anything else of this destination is due, or null if nothing is queued. A
   * backend may answer null when it filled the limit (the caller claims again at once).
   */
  readonly nextDueAt: number | null;
}

/** Proof that this worker holds a delivery. */
export interface Lease {
  readonly deliveryId: string;
  readonly token: string;
}

export interface ClaimedDelivery {
  readonly lease: Lease;
  readonly destination: string;
  /** 1-based attempt number in the current cycle (a replay starts a new cycle). */
  readonly attempt: number;
  /** The previous holder's lease ran out: it died or stalled mid-attempt. */
  readonly recoveredLease: boolean;
  readonly leaseExpiries: number;
  readonly event: SteadfastEvent;
}

export interface ErrorInfo {
  readonly name: string;
  readonly code: string | null;
  readonly message: string;
  readonly stack: string | null;
}

export interface AttemptReport {
  readonly startedAt: number;
  readonly durationMs: number;
  /** Absent on success. */
  readonly error?: ErrorInfo;
}

/** The delivery states a user sees. */
export type DeliveryState =
  | 'pending' // waiting for its first attempt (or for an earlier event of its key)
  | 'processing' // leased by a worker
  | 'retrying' // failed, next attempt scheduled
  | 'succeeded'
  | 'dead' // in the dead-letter queue
  | 'discarded'; // dead-lettered, then deleted from the dead-letter queue by an operator

export type AttemptOutcome = 'succeeded' | 'failed' | 'lease_expired' | 'probe_failed';

export interface AttemptRecord {
  /** 1-based, counting every attempt the delivery ever had (across replays). */
  readonly number: number;
  readonly startedAt: number;
  readonly durationMs: number | null;
  readonly outcome: AttemptOutcome;
  readonly error: ErrorInfo | null;
}

export interface DeliveryRecord {
  readonly deliveryId: string;
  readonly destination: string;
  readonly state: DeliveryState;
  /** Attempts in the current cycle. */
  readonly attempts: number;
  /** Pending behind an earlier event of the same key (ordered destinations). */
  readonly waitingForKey: boolean;
  /** When the next attempt may start (pending/retrying), or when the current lease ends (processing). */
  readonly nextAttemptAt: number | null;
  readonly lastError: ErrorInfo | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly completedAt: number | null;
  readonly replays: number;
  readonly history: readonly AttemptRecord[];
}

export interface EventRecord {
  readonly event: SteadfastEvent;
  readonly deliveries: readonly DeliveryRecord[];
}

export interface DeadLetter {
  /** The id of the dead delivery. */
  readonly id: string;
  readonly destination: string;
  readonly event: SteadfastEvent;
  readonly attempts: number;
  readonly error: ErrorInfo;
  readonly firstFailedAt: number;
  readonly lastFailedAt: number;
  readonly deadAt: number;
  readonly history: readonly AttemptRecord[];
}

export interface DeadLetterFilter {
  readonly destination?: string;
  readonly type?: string;
  readonly key?: string;
  /** Dead-lettered at or after this time (ms since epoch). */
  readonly since?: number;
  /** Dead-lettered before this time (ms since epoch). */
  readonly until?: number;
}

export interface DeadLetterQuery extends DeadLetterFilter {
  /** default 50, at most 1000 */
  readonly limit?: number;
  /** `nextCursor` of the previous page. */
  readonly cursor?: string;
}

export interface DeadLetterPage {
  readonly items: DeadLetter[];
  /** Pass as `cursor` for the next page; null on the last page. */
  readonly nextCursor: string | null;
}

export interface DeadLetterStats {
  readonly count: number;
  /** Age of the oldest dead letter in ms, or null when there are none. */
  readonly oldestAgeMs: number | null;
  readonly oldestDeadAt: number | null;
  readonly byDestination: Readonly<Record<string, number>>;
  readonly byType: Readonly<Record<string, number>>;
  readonly topErrors: readonly { readonly message: string; readonly count: number }[];
}

/** Select dead letters by id, or by filter (an empty filter selects all). */
export type DeadLetterSelector = readonly string[] | DeadLetterFilter;

export interface DeadLetterStore {
  list(query?: DeadLetterQuery): Promise<DeadLetterPage>;
  get(id: string): Promise<DeadLetter | null>;
  /** Puts dead deliveries back in the queue with a fresh attempt budget. */
  replay(selector: DeadLetterSelector): Promise<{ replayed: number; ids: string[] }>;
  /** Removes dead letters for good; their deliveries become `discarded`. */
  delete(selector: DeadLetterSelector): Promise<{ deleted: number; ids: string[] }>;
  stats(): Promise<DeadLetterStats>;
}

export interface DestinationQueueStats {
  readonly pending: number;
  readonly retrying: number;
  readonly processing: number;
  readonly dead: number;
  /** Age of the oldest unfinished delivery, ms. */
  readonly oldestPendingAgeMs: number | null;
}

export interface QueueStats {
  /** Unfinished deliveries (pending + retrying + processing). */
  readonly depth: number;
  readonly byDestination: Readonly<Record<string, DestinationQueueStats>>;
}

export interface PurgeRequest {
  readonly deliveredBefore: number;
  readonly dedupBefore: number;
  /** Most events removed in one call. default 1000 */
  readonly limit?: number;
}

export interface PurgeResult {
  readonly events: number;
  readonly dedupEntries: number;
}
