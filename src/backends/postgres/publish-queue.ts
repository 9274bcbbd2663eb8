import { BackendError } from '../../errors.js';
import type { PublishResult } from '../backend.js';
import type { PgContext } from './context.js';
import { publishBatch, publishDirect, type PublishCall, type PublishOutcome } from './publish.js';
import { isRetryable } from './retryable.js';

interface QueuedCall extends PublishCall {
  readonly resolve: (results: PublishResult[]) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit for ingest. Every `publish` of one event-loop turn (and every one arriving while
 * the previous batch commits) shares ONE transaction of multi-row statements, and all of them
 * settle only after its commit. Batches run one after another, so events keep the order in
 * which they were published. If the shared transaction fails for a reason other than the store
 * being unavailable, each call is run again in a transaction of its own, so only the call at
 * fault fails.
 */
export class PublishQueue {
  private queue: QueuedCall[] = [];
  private scheduled = false;
  private flushing: Promise<void> | null = null;
  private closed = false;
  private commits = 0;
  private writes = 0;

  constructor(
    private readonly ctx: PgContext,
    private readonly onCommitted: (outcome: PublishOutcome) => void,
  ) {}

  publish(call: PublishCall): Promise<PublishResult[]> {
    if (this.closed) return Promise.reject(new BackendError('the store is closed'));
    return new Promise<PublishResult[]>((resolve, reject) => {
      this.queue.push({ ...call, resolve, reject });
      this.schedule();
    });
  }

  /** Transactions committed and the `publish` calls they carried. */
  get stats(): { commits: number; writes: number } {
    return { commits: this.commits, writes: this.writes };
  }

  /** Refuses new calls and resolves once every queued one has settled. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.scheduled || this.flushing || this.queue.length > 0) {
      if (this.flushing) await this.flushing;
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = null;
        if (this.queue.length > 0) this.schedule();
      });
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    try {
      this.settled(batch, await this.write(batch));
      return;
    } catch (error) {
      if (batch.length === 1 || unavailable(error)) {
        for (const call of batch) call.reject(error);
        return;
      }
    }
    // Something in one call broke the shared transaction: give each call its own, in order.
    for (const call of batch) {
      try {
        this.settled([call], await this.write([call]));
      } catch (error) {
        call.reject(error);
      }
    }
  }

  /** One statement in the common case; a transaction when ordered keys or mixed windows need it. */
  private async write(calls: readonly QueuedCall[]): Promise<PublishOutcome> {
    return (
      (await publishDirect(this.ctx, calls)) ??
      this.ctx.db.transaction('publish', (sql) => publishBatch(this.ctx, sql, calls))
    );
  }

  private settled(batch: readonly QueuedCall[], outcome: PublishOutcome): void {
    this.commits += 1;
    this.writes += batch.length;
    batch.forEach((call, i) => call.resolve(outcome.results[i] ?? []));
    this.onCommitted(outcome);
  }
}

/** The store itself failed (not one call's data): running calls one by one cannot help. */
function unavailable(error: unknown): boolean {
  return error instanceof BackendError && isRetryable(error.cause);
}
