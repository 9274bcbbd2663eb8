/**
 * BullMQ as a peer, on the Redis the project's services use. Two modes: Redis as started for
 * development (no persistence: `--save "" --appendonly no`), and durable acknowledgement, where
 * the run switches that same Redis to `appendonly yes` + `appendfsync always` (every write is in
 * the AOF and fsynced before Redis answers) and restores the previous values afterwards.
 * Every run uses a key prefix of its own and removes its keys at teardown (never FLUSHALL).
 */
import { Queue, Worker, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { deleteKeys, redisClient, redisHostPort, uniqueName } from './services.js';
import type { BenchEvent, BenchHandler, ConsumerOptions, PeerSystem, SystemFactory } from './system.js';

const QUEUE = 'sink';
const JOB_NAME = 'event';

type Mode = 'default' | 'durable';

/** Persistence settings of the Redis, as CONFIG GET reports them. */
interface Persistence {
  readonly appendonly: string;
  readonly appendfsync: string;
}

async function configGet(redis: Redis, name: string): Promise<string> {
  const reply = (await redis.config('GET', name)) as unknown as string[];
  const value = reply[1];
  if (value === undefined) throw new Error(`CONFIG GET ${name} answered nothing`);
  return value;
}

/** Waits until Redis has no AOF rewrite running or scheduled (turning appendonly on starts one). */
async function aofSettled(redis: Redis, limitMs: number): Promise<void> {
  const until = performance.now() + limitMs;
  for (;;) {
    const info = await redis.info('persistence');
    const busy = /aof_rewrite_in_progress:1|aof_rewrite_scheduled:1/.test(info);
    if (!busy) return;
    if (performance.now() > until) throw new Error(`AOF rewrite still running after ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

class BullMqSystem implements PeerSystem {
  readonly name: string;
  readonly configuration: string;
  private readonly connection = { ...redisHostPort(), maxRetriesPerRequest: null };
  private prefix = '';
  private queue: Queue | null = null;
  private worker: Worker | null = null;
  private jobOptions: JobsOptions = {};
  private admin: Redis | null = null;
  private previous: Persistence | null = null;

  constructor(private readonly mode: Mode) {
    this.name = mode === 'durable' ? 'bullmq appendfsync always' : 'bullmq';
    this.configuration =
      (mode === 'durable'
        ? 'Redis switched to appendonly yes + appendfsync always for the run (restored after); '
        : 'Redis as started for development (no RDB, no AOF); ') +
      'Queue.add / Queue.addBulk with { attempts: 3, backoff: { type: exponential, delay: 10 }, ' +
      'removeOnComplete: true, removeOnFail: false }; one Worker, concurrency 16; failed = Queue.getFailedCount()';
  }

  async setup(): Promise<void> {
    this.prefix = uniqueName('steadfast-bench-bullmq');
    if (this.mode === 'durable') await this.makeDurable();
    this.queue = new Queue(QUEUE, { connection: this.connection, prefix: this.prefix });
    this.queue.on('error', () => undefined);
    await this.queue.waitUntilReady();
  }

  async start(handler: BenchHandler, options: ConsumerOptions): Promise<void> {
    this.jobOptions = {
      attempts: options.maxAttempts,
      backoff: { type: 'exponential', delay: options.backoffBaseMs },
      removeOnComplete: true,
      removeOnFail: false,
    };
    this.worker = new Worker<BenchEvent>(QUEUE, (job: Job<BenchEvent>) => handler(job.data), {
      connection: this.connection,
      prefix: this.prefix,
      concurrency: options.concurrency,
    });
    this.worker.on('error', () => undefined);
    await this.worker.waitUntilReady();
  }

  async add(event: BenchEvent): Promise<void> {
    await this.required().add(JOB_NAME, event, this.jobOptions);
  }

  async addBatch(events: readonly BenchEvent[]): Promise<void> {
    await this.required().addBulk(events.map((data) => ({ name: JOB_NAME, data, opts: this.jobOptions })));
  }

  deadOrFailedCount(): Promise<number> {
    return this.required().getFailedCount();
  }

  async teardown(): Promise<void> {
    try {
      await this.worker?.close();
      await this.queue?.obliterate({ force: true }).catch(() => undefined);
      await this.queue?.close();
    } finally {
      this.worker = null;
      this.queue = null;
      try {
        if (this.prefix) await deleteKeys(`${this.prefix}:`);
      } finally {
        await this.restorePersistence();
      }
    }
  }

  /** Records the current settings, then turns on the AOF with an fsync per write. */
  private async makeDurable(): Promise<void> {
    this.admin = redisClient();
    this.previous = {
      appendonly: await configGet(this.admin, 'appendonly'),
      appendfsync: await configGet(this.admin, 'appendfsync'),
    };
    await this.admin.config('SET', 'appendonly', 'yes');
    await aofSettled(this.admin, 30_000);
    await this.admin.config('SET', 'appendfsync', 'always');
  }

  private async restorePersistence(): Promise<void> {
    const admin = this.admin;
    const previous = this.previous;
    this.admin = null;
    this.previous = null;
    if (!admin) return;
    try {
      if (previous) {
        await admin.config('SET', 'appendfsync', previous.appendfsync);
        await aofSettled(admin, 30_000);
        await admin.config('SET', 'appendonly', previous.appendonly);
      }
    } finally {
      admin.disconnect();
    }
  }

  private required(): Queue {
    if (!this.queue) throw new Error(`${this.name}: setup() has not run`);
    return this.queue;
  }
}

/** The Redis persistence settings now, for the header (and to see they were restored). */
export async function redisFacts(): Promise<{ version: string; persistence: Persistence }> {
  const redis = redisClient();
  try {
    const info = await redis.info('server');
    return {
      version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
      persistence: {
        appendonly: await configGet(redis, 'appendonly'),
        appendfsync: await configGet(redis, 'appendfsync'),
      },
    };
  } finally {
    redis.disconnect();
  }
}

export const bullmqSystems: readonly SystemFactory[] = (['default', 'durable'] as const).map((mode) => ({
  id: mode === 'durable' ? 'bullmq-durable' : 'bullmq',
  name: mode === 'durable' ? 'bullmq appendfsync always' : 'bullmq',
  family: 'peer',
  create: () => new BullMqSystem(mode),
}));
