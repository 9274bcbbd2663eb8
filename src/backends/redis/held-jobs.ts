import type { Job } from 'bullmq';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { DeliveryJobData } from './names.js';

export interface HeldJob {
  readonly job: Job<DeliveryJobData, unknown, string>;
  /** The lock token this process fetched the job with. */
  readonly token: string;
}

/**
 * The BullMQ jobs this process holds (active, locked with its token), by delivery id. The store
 * is settled first; then the job follows: finished, delayed for a retry, or put back. A job
 * that vanished from Redis meanwhile (flush, restart) is simply forgotten: the reconciler
 * re-creates what the store still needs.
 */
export class HeldJobs {
  private readonly held = new Map<string, HeldJob>();

  constructor(
    private readonly clock: Clock,
    private readonly logger: Logger | null,
  ) {}

  get size(): number {
    return this.held.size;
  }

  hold(deliveryId: string, held: HeldJob): void {
    this.held.set(deliveryId, held);
  }

  has(deliveryId: string): boolean {
    return this.held.has(deliveryId);
  }

  /** The delivery is finished (or no longer this job's business): remove the job. */
  finish(deliveryId: string): Promise<void> {
    return this.take(deliveryId, ({ job, token }) => job.moveToCompleted(null, token, false));
  }

  /** A retry: the job waits in the delayed set until `runAt` (store clock). */
  delay(deliveryId: string, runAt: number): Promise<void> {
    return this.take(deliveryId, ({ job, token }) =>
      job.moveToDelayed(Date.now() + Math.max(0, runAt - this.clock.now()), token),
    );
  }

  /** Handed back without an attempt: the job waits again at once. */
  putBack(deliveryId: string): Promise<void> {
    return this.take(deliveryId, ({ job, token }) => job.moveToWait(token));
  }

  /** Extends the locks of the jobs held for these deliveries. */
  async extend(deliveryIds: readonly string[], durationMs: number): Promise<void> {
    await Promise.all(
      deliveryIds.map(async (id) => {
        const held = this.held.get(id);
        if (!held) return;
        try {
          await held.job.extendLock(held.token, durationMs);
        } catch (error) {
          this.logger?.debug({ deliveryId: id, err: error }, 'could not extend a job lock');
        }
      }),
    );
  }

  /** Forgets these deliveries' jobs without touching Redis (their lease was lost). */
  forget(deliveryIds: readonly string[]): void {
    for (const id of deliveryIds) this.held.delete(id);
  }

  /** Forgets everything (closing: the locks run out and the jobs come back to other workers). */
  clear(): void {
    this.held.clear();
  }

  private async take(deliveryId: string, move: (held: HeldJob) => Promise<unknown>): Promise<void> {
    const held = this.held.get(deliveryId);
    if (!held) return;
    this.held.delete(deliveryId);
    try {
      await move(held);
    } catch (error) {
      // Missing job or lock (flushed, or its lock ran out), or Redis unreachable: the store
      // holds the truth and the reconciler repairs Redis.
      this.logger?.debug({ deliveryId, err: error }, 'could not move a job');
    }
  }
}
