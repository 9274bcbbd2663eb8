import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Clock } from '../../clock.js';
import type { ScheduledDelivery } from '../dispatch-source.js';
import { jobIdOf, queueNameOf, type DeliveryJobData } from './names.js';

const JOB_NAME = 'delivery';
/** Jobs are never given up on by BullMQ: the store decides when a delivery is finished. */
const NEVER = Number.MAX_SAFE_INTEGER;
/** Stalled jobs (their process died) are looked for at least this often, ms. */
const MAX_STALLED_INTERVAL_MS = 30_000;

export type DeliveryQueue = Queue<DeliveryJobData, unknown, string>;
export type DeliveryWorker = Worker<DeliveryJobData, unknown, string>;

/**
 * One BullMQ queue per destination, and (in processes that claim for it) one worker without a
 * processor, used to fetch jobs by hand. All share one Redis connection; each worker adds its own
 * blocking connection, which stays idle.
 */
export class DestinationQueues {
  private readonly queues = new Map<string, DeliveryQueue>();
  private readonly workers = new Map<string, DeliveryWorker>();

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly clock: Clock,
  ) {}

  queue(destination: string): DeliveryQueue {
    let queue = this.queues.get(destination);
    if (!queue) {
      queue = new Queue<DeliveryJobData, unknown, string>(queueNameOf(destination), {
        connection: this.connection,
        prefix: this.prefix,
        skipVersionCheck: true,
      });
      queue.on('error', () => undefined);
      this.queues.set(destination, queue);
    }
    return queue;
  }

  /**
   * The worker that fetches this destination's jobs. Its lock duration is the lease: a process
   * that dies with jobs active gives them back once the lock runs out (BullMQ's stalled check).
   */
  worker(destination: string, leaseMs: number): DeliveryWorker {
    let worker = this.workers.get(destination);
    if (!worker) {
      worker = new Worker<DeliveryJobData, unknown, string>(queueNameOf(destination), null, {
        connection: this.connection,
        prefix: this.prefix,
        skipVersionCheck: true,
        autorun: false,
        lockDuration: leaseMs,
        stalledInterval: Math.min(Math.max(leaseMs, 1000), MAX_STALLED_INTERVAL_MS),
        maxStalledCount: NEVER,
      });
      worker.on('error', () => undefined);
      worker.startStalledCheckTimer().catch(() => undefined);
      this.workers.set(destination, worker);
    }
    return worker;
  }

  /**
   * Adds one job per delivery: waiting if due, delayed until `runAt` otherwise. A job whose id
   * exists already is left as it is (BullMQ ignores the add), so adding twice is harmless.
   */
  async add(deliveries: readonly ScheduledDelivery[]): Promise<void> {
    const now = this.clock.now();
    const byDestination = new Map<string, ScheduledDelivery[]>();
    for (const d of deliveries) {
      const list = byDestination.get(d.destination);
      if (list) list.push(d);
      else byDestination.set(d.destination, [d]);
    }
    await Promise.all(
      [...byDestination].map(([destination, list]) =>
        this.queue(destination).addBulk(
          list.map((d) => ({
            name: JOB_NAME,
            data: { deliveryId: d.deliveryId, runAt: d.runAt },
            opts: {
              jobId: jobIdOf(d.deliveryId),
              delay: Math.max(0, d.runAt - now),
              removeOnComplete: true,
              removeOnFail: true,
            },
          })),
        ),
      ),
    );
  }

  /** Answers which of these deliveries of one destination have no job in Redis. */
  async missing(destination: string, deliveryIds: readonly string[]): Promise<string[]> {
    if (deliveryIds.length === 0) return [];
    const queue = this.queue(destination);
    const pipeline = this.connection.pipeline();
    for (const id of deliveryIds) pipeline.exists(queue.toKey(jobIdOf(id)));
    const replies = (await pipeline.exec()) ?? [];
    return deliveryIds.filter((_, i) => {
      const [error, exists] = replies[i] ?? [null, 0];
      return error === null && exists === 0;
    });
  }

  /** Removes the jobs of these deliveries unless a worker holds them (then BullMQ keeps them). */
  async remove(destination: string, deliveryIds: readonly string[]): Promise<void> {
    const queue = this.queue(destination);
    await Promise.all(deliveryIds.map((id) => queue.remove(jobIdOf(id))));
  }

  async close(): Promise<void> {
    const all = [...this.workers.values(), ...this.queues.values()];
    this.workers.clear();
    this.queues.clear();
    await Promise.allSettled(all.map((q) => q.close()));
  }
}
