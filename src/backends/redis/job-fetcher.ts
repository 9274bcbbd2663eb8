import { randomBytes } from 'node:crypto';
import type { HeldJob } from './held-jobs.js';
import { isDeliveryJobData } from './names.js';
import type { DestinationQueues } from './queues.js';

/** Most jobs fetched by one claim (each fetch is one script run; they are sent together). */
const MAX_FETCH = 100;

export interface FetchResult {
  readonly jobs: (HeldJob & { readonly deliveryId: string })[];
  /** Redis gave fewer jobs than asked for: its waiting list is empty for now. */
  readonly drained: boolean;
}

/**
 * Takes up to `limit` waiting jobs of a destination with BullMQ's manual fetching
 * (`getNextJob` without blocking), each locked with a token of its own.
 */
export class JobFetcher {
  private readonly tokenPrefix = randomBytes(6).toString('base64url');
  private counter = 0;

  constructor(private readonly queues: DestinationQueues) {}

  async fetch(destination: string, limit: number, leaseMs: number): Promise<FetchResult> {
    const wanted = Math.min(limit, MAX_FETCH);
    if (wanted <= 0) return { jobs: [], drained: false };
    const worker = this.queues.worker(destination, leaseMs);
    const tokens = Array.from({ length: wanted }, () => `${this.tokenPrefix}:${++this.counter}`);
    const settled = await Promise.allSettled(
      tokens.map((token) => worker.getNextJob(token, { block: false })),
    );
    const jobs: FetchResult['jobs'] = [];
    let failure: unknown = null;
    settled.forEach((outcome, i) => {
      if (outcome.status === 'rejected') {
        failure ??= outcome.reason;
        return;
      }
      const job = outcome.value;
      if (!job) return;
      const data: unknown = job.data;
      if (!isDeliveryJobData(data)) {
        // Not ours (or damaged): finish it so it does not come back.
        job.moveToCompleted(null, tokens[i]!, false).catch(() => undefined);
        return;
      }
      jobs.push({ job, token: tokens[i]!, deliveryId: data.deliveryId });
    });
    if (failure !== null && jobs.length === 0) throw failure;
    return { jobs, drained: jobs.length < wanted };
  }
}
