/**
 * What the peer comparison needs from each system under test: Steadfast on one of its backends,
 * BullMQ, pg-boss or graphile-worker. The harness (workload.ts) owns the events, the handler, the
 * sink and every measurement; an adapter only moves events from `add` to the handler with the
 * system's own idiomatic API, and says how many events ended dead-lettered (or failed).
 */

/** One benchmark event, about 300 bytes serialised. */
export interface BenchEvent {
  /** A UUID: it is the sink's primary key. */
  readonly eventId: string;
  readonly type: string;
  readonly key: string;
  readonly payload: BenchPayload;
}

export type BenchPayload = {
  /** Position in the run, so the harness finds the event's figures without a lookup. */
  readonly seq: number;
  readonly orderId: string;
  readonly customerId: string;
  readonly amountCents: number;
  readonly currency: string;
  readonly lines: number;
  readonly note: string;
};

/**
 * The harness's handler. Resolves when the event is in the sink; rejects when the attempt is to
 * fail (the system is then expected to retry it, up to `maxAttempts` in all).
 */
export type BenchHandler = (event: BenchEvent) => Promise<void>;

/** How the one destination (queue, task) runs, the same for every system. */
export interface ConsumerOptions {
  /** Handler calls running at once. */
  readonly concurrency: number;
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** First retry delay of the exponential backoff (ms); each system gets as close as it can. */
  readonly backoffBaseMs: number;
}

export interface PeerSystem {
  /** Name used in tables. */
  readonly name: string;
  /** How the system is configured for the run, printed under the tables. */
  readonly configuration: string;
  /** Creates what the system needs (schema, queue, store). Called once per run, before `start`. */
  setup(): Promise<void>;
  /** Begins consuming: `handler` is called for every event, at most `concurrency` at once. */
  start(handler: BenchHandler, options: ConsumerOptions): Promise<void>;
  /** Adds one event; resolves when the system has acknowledged it. */
  add(event: BenchEvent): Promise<void>;
  /** Adds several events with the system's batch API; resolves when all are acknowledged. */
  addBatch(events: readonly BenchEvent[]): Promise<void>;
  /** Events that ended dead-lettered (Steadfast) or failed after their last attempt (peers). */
  deadOrFailedCount(): Promise<number>;
  /** Stops consuming and removes everything `setup` created. Safe after a partial setup. */
  teardown(): Promise<void>;
}

/** Builds a fresh, not yet set-up instance of a system; one per run. */
export interface SystemFactory {
  /** Command-line id, for `--peers-systems=`: lower case, no spaces. */
  readonly id: string;
  readonly name: string;
  /** Which comparison family the system belongs to: `baseline` is the in-memory ceiling. */
  readonly family: 'steadfast' | 'peer' | 'baseline';
  create(): PeerSystem;
}
