/**
 * pg-boss 10 as a peer, in a schema of its own per run (dropped at teardown).
 *
 * pg-boss 10 workers poll: each `work()` loop fetches up to `batchSize` jobs, hands them to the
 * handler as an array, and then waits out the rest of `pollingIntervalSeconds` (0.5 s at the
 * least) unless it was notified. The fairest set-up for "one destination at concurrency 16" is
 * therefore 16 `work()` loops, each fetching batches and running its jobs one after another, so
 * at most 16 handler calls run at once while every fetch brings many jobs. A job whose handler
 * call fails is failed on its own with `fail()`; the rest of the batch completes as pg-boss does
 * when the handler resolves (completion only touches jobs still active).
 */
import PgBoss from 'pg-boss';
import { DATABASE_URL, dropSchema, ident, uniqueName } from './services.js';
import type { BenchEvent, BenchHandler, ConsumerOptions, PeerSystem, SystemFactory } from './system.js';

const QUEUE = 'sink';
/** Jobs each `work()` loop fetches at once. */
const BATCH_SIZE = 200;
/** pg-boss 10's smallest polling interval. */
const POLLING_INTERVAL_SECONDS = 0.5;

class PgBossSystem implements PeerSystem {
  readonly name = 'pg-boss';
  readonly configuration =
    `PgBoss({ schema of its own, pool max 10, schedule: false }); createQueue with retryLimit 2 (3 attempts), ` +
    'retryBackoff: true, retryDelay: 0 (whole seconds only: 10 ms rounds to 0, i.e. immediate retries, in its favour); ' +
    `send / insert; 16 work() loops (concurrency 16), each batchSize ${BATCH_SIZE}, ` +
    `pollingIntervalSeconds ${POLLING_INTERVAL_SECONDS} (the minimum); failed = jobs in state failed`;
  private readonly schema = uniqueName('steadfast_bench_pgboss');
  private boss: PgBoss | null = null;
  private retry: { retryLimit: number; retryDelay: number; retryBackoff: boolean } | null = null;

  async setup(): Promise<void> {
    this.boss = new PgBoss({
      connectionString: DATABASE_URL,
      schema: this.schema,
      max: 10,
      schedule: false,
    });
    this.boss.on('error', () => undefined);
    await this.boss.start();
  }

  async start(handler: BenchHandler, options: ConsumerOptions): Promise<void> {
    const boss = this.required();
    this.retry = {
      retryLimit: options.maxAttempts - 1,
      retryDelay: Math.round(options.backoffBaseMs / 1000),
      retryBackoff: true,
    };
    await boss.createQueue(QUEUE, { name: QUEUE, ...this.retry });
    const work = async (jobs: PgBoss.Job<BenchEvent>[]): Promise<void> => {
      const failed: string[] = [];
      for (const job of jobs) {
        try {
          await handler(job.data);
        } catch {
          failed.push(job.id);
        }
      }
      if (failed.length > 0) await boss.fail(QUEUE, failed);
    };
    for (let i = 0; i < options.concurrency; i += 1) {
      await boss.work<BenchEvent>(
        QUEUE,
        { batchSize: BATCH_SIZE, pollingIntervalSeconds: POLLING_INTERVAL_SECONDS },
        work,
      );
    }
  }

  async add(event: BenchEvent): Promise<void> {
    await this.required().send(QUEUE, event, this.retry ?? {});
  }

  async addBatch(events: readonly BenchEvent[]): Promise<void> {
    await this.required().insert(events.map((data) => ({ name: QUEUE, data, ...this.retry })));
  }

  async deadOrFailedCount(): Promise<number> {
    const { rows } = await this.required()
      .getDb()
      .executeSql(
        `SELECT count(*)::int AS failed FROM ${ident(this.schema)}.job WHERE name = $1 AND state = 'failed'`,
        [QUEUE],
      );
    return Number((rows[0] as { failed: number } | undefined)?.failed ?? 0);
  }

  async teardown(): Promise<void> {
    try {
      await this.boss?.stop({ graceful: true, wait: true, timeout: 5_000 });
    } finally {
      this.boss = null;
      await dropSchema(this.schema);
    }
  }

  private required(): PgBoss {
    if (!this.boss) throw new Error('pg-boss: setup() has not run');
    return this.boss;
  }
}

export const pgBossSystem: SystemFactory = {
  id: 'pg-boss',
  name: 'pg-boss',
  family: 'peer',
  create: () => new PgBossSystem(),
};
