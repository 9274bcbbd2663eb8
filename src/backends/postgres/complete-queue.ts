import { BackendError, LeaseLostError } from '../../errors.js';
import type { AttemptReport, Lease } from '../backend.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import type { PgContext } from './context.js';
import { keyLockPrefix } from './key-order.js';
import { prepared } from './statements.js';

const COMPLETE = prepared(`SELECT * FROM complete_deliveries($1, $2, $3, $4, $5, $6)`);

interface QueuedCompletion {
  readonly lease: Lease;
  readonly report: AttemptReport;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

interface CompletedRow {
  out_id: number;
  out_destination: string;
  out_promoted: number | null;
}

/**
 * Successes are the hot path: every `complete` of one event-loop turn is settled by ONE call of
 * the `complete_deliveries` function, a single round trip that also promotes the next delivery
 * of each ordered key. A success is kept on the delivery row itself (start time and duration).
 */
export class CompleteQueue {
  private queue: QueuedCompletion[] = [];
  private scheduled = false;
  private closed = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly ctx: PgContext,
    private readonly onCommitted: (promoted: readonly ScheduledDelivery[]) => void,
  ) {}

  complete(lease: Lease, report: AttemptReport): Promise<void> {
    if (this.closed) return Promise.reject(new BackendError('the store is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ lease, report, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        const flush = this.flush();
        this.inFlight.add(flush);
        void flush.finally(() => this.inFlight.delete(flush));
      });
    });
  }

  /** Refuses new calls and resolves once every queued one has settled. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.scheduled || this.inFlight.size > 0) {
      if (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private async flush(): Promise<void> {
    // One entry per delivery: a second completion of the same lease in the batch is a lost lease.
    const batch = new Map<string, QueuedCompletion>();
    const duplicates: QueuedCompletion[] = [];
    for (const item of this.queue.splice(0)) {
      if (batch.has(item.lease.deliveryId) || !Number.isSafeInteger(Number(item.lease.deliveryId))) {
        duplicates.push(item);
      } else {
        batch.set(item.lease.deliveryId, item);
      }
    }
    for (const item of duplicates) item.reject(lost(item.lease));
    if (batch.size === 0) return;
    const items = [...batch.values()];
    const now = this.ctx.clock.now();
    let rows: CompletedRow[];
    try {
      rows = await this.ctx.bookkeeping.run('complete', (sql) =>
        sql.query<CompletedRow>(COMPLETE, [
          items.map((i) => Number(i.lease.deliveryId)),
          items.map((i) => i.lease.token),
          items.map((i) => i.report.startedAt),
          items.map((i) => Math.round(i.report.durationMs)),
          now,
          keyLockPrefix(this.ctx.schema),
        ]),
      );
    } catch (error) {
      for (const item of items) item.reject(error);
      return;
    }
    const done = new Set(rows.map((r) => String(r.out_id)));
    for (const item of items) {
      if (done.has(item.lease.deliveryId)) item.resolve();
      else item.reject(lost(item.lease));
    }
    const promoted = rows
      .filter((r): r is CompletedRow & { out_promoted: number } => r.out_promoted !== null)
      .map((r) => ({ deliveryId: String(r.out_promoted), destination: r.out_destination, runAt: now }));
    if (promoted.length > 0) this.onCommitted(promoted);
  }
}

function lost(lease: Lease): LeaseLostError {
  return new LeaseLostError(`delivery ${lease.deliveryId} is no longer leased to this worker`);
}
