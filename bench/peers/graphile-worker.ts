/**
 * graphile-worker 0.17 as a peer, in a schema of its own per run (dropped at teardown).
 *
 * Jobs are added with WorkerUtils (`addJob`, and `addJobs` for batches) and run by `run()` with
 * concurrency 16. New jobs reach the pool through LISTEN/NOTIFY; `pollInterval` only matters for
 * jobs due later (retries). The pool fetches jobs in batches (`localQueue`) and batches its
 * completions and failures, as its performance guide suggests for high throughput.
 *
 * graphile-worker's retry delay is fixed by the library: exp(min(attempts, 10)) seconds, about
 * 2.7 s and then 7.4 s; it cannot be set to the workload's 10 ms, so its failure variant is
 * bound by those delays.
 */
import { Logger, makeWorkerUtils, run, type Runner, type WorkerUtils } from 'graphile-worker';
import { DATABASE_URL, dropSchema, ident, uniqueName } from './services.js';
import type { BenchEvent, BenchHandler, ConsumerOptions, PeerSystem, SystemFactory } from './system.js';

const TASK = 'sink';
const POLL_INTERVAL_MS = 100;
const LOCAL_QUEUE_SIZE = 100;
const BATCH_DELAY_MS = 0;

/** graphile-worker logs through this; the benchmark keeps its output to the tables. */
const silent = new Logger(() => () => undefined);

class GraphileWorkerSystem implements PeerSystem {
  readonly name = 'graphile-worker';
  readonly configuration =
    `run({ concurrency: 16, pollInterval: ${POLL_INTERVAL_MS} ms, maxPoolSize: 18, schema of its own, ` +
    `preset.worker: { localQueue.size: ${LOCAL_QUEUE_SIZE}, completeJobBatchDelay: ${BATCH_DELAY_MS}, ` +
    `failJobBatchDelay: ${BATCH_DELAY_MS} } }); WorkerUtils.addJob / addJobs with maxAttempts 3; ` +
    'retry delay fixed by the library at exp(attempts) s (2.7 s, 7.4 s); failed = attempts = max_attempts, unlocked';
  private readonly schema = uniqueName('steadfast_bench_graphile');
  private utils: WorkerUtils | null = null;
  private runner: Runner | null = null;
  private maxAttempts = 1;

  async setup(): Promise<void> {
    this.utils = await makeWorkerUtils({
      connectionString: DATABASE_URL,
      schema: this.schema,
      logger: silent,
    });
    await this.utils.migrate();
  }

  async start(handler: BenchHandler, options: ConsumerOptions): Promise<void> {
    this.maxAttempts = options.maxAttempts;
    this.runner = await run({
      connectionString: DATABASE_URL,
      schema: this.schema,
      concurrency: options.concurrency,
      maxPoolSize: Math.max(10, options.concurrency + 2),
      pollInterval: POLL_INTERVAL_MS,
      noHandleSignals: true,
      logger: silent,
      taskList: { [TASK]: (payload) => handler(payload as BenchEvent) },
      preset: {
        worker: {
          localQueue: { size: LOCAL_QUEUE_SIZE },
          completeJobBatchDelay: BATCH_DELAY_MS,
          failJobBatchDelay: BATCH_DELAY_MS,
        },
      },
    });
  }

  async add(event: BenchEvent): Promise<void> {
    await this.required().addJob(TASK, event, { maxAttempts: this.maxAttempts });
  }

  async addBatch(events: readonly BenchEvent[]): Promise<void> {
    await this.required().addJobs(
      events.map((payload) => ({ identifier: TASK, payload, maxAttempts: this.maxAttempts })),
    );
  }

  async deadOrFailedCount(): Promise<number> {
    return this.required().withPgClient(async (client) => {
      const { rows } = await client.query<{ failed: number }>(
        `SELECT count(*)::int AS failed FROM ${ident(this.schema)}.jobs
          WHERE attempts >= max_attempts AND locked_at IS NULL AND last_error IS NOT NULL`,
      );
      return rows[0]?.failed ?? 0;
    });
  }

  async teardown(): Promise<void> {
    try {
      await this.runner?.stop();
    } finally {
      this.runner = null;
      try {
        await this.utils?.release();
      } finally {
        this.utils = null;
        await dropSchema(this.schema);
      }
    }
  }

  private required(): WorkerUtils {
    if (!this.utils) throw new Error('graphile-worker: setup() has not run');
    return this.utils;
  }
}

export const graphileWorkerSystem: SystemFactory = {
  id: 'graphile-worker',
  name: 'graphile-worker',
  family: 'peer',
  create: () => new GraphileWorkerSystem(),
};
