/**
 * Steadfast as a system under test, on three backends: SQLite on a temporary file, PostgreSQL in
 * a schema of its own, and PostgreSQL as the store of record with Redis dispatching (keys under a
 * prefix of their own). Each run gets a fresh store, removed at teardown.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createProcessor,
  PostgresBackend,
  RedisDispatchBackend,
  SqliteBackend,
  type Backend,
  type JsonValue,
  type ReliableEventProcessor,
} from '../../src/index.js';
import { DATABASE_URL, deleteKeys, dropSchema, REDIS_URL, uniqueName } from './services.js';
import type {
  BenchEvent,
  BenchHandler,
  BenchPayload,
  ConsumerOptions,
  PeerSystem,
  SystemFactory,
} from './system.js';

/** What a backend variant creates for one run, and how to remove it afterwards. */
interface StoreHandle {
  readonly backend: Backend;
  /** Removes files, schemas and keys; called after the processor stopped. */
  readonly remove: () => Promise<void>;
}

type BackendKind = 'sqlite' | 'postgres' | 'postgres+redis';

async function openStore(kind: BackendKind): Promise<StoreHandle> {
  switch (kind) {
    case 'sqlite': {
      const dir = await mkdtemp(join(tmpdir(), 'steadfast-peers-'));
      return {
        backend: new SqliteBackend({ path: join(dir, 'bench.db') }),
        remove: () => rm(dir, { recursive: true, force: true }),
      };
    }
    case 'postgres': {
      const schema = uniqueName('steadfast_bench');
      return {
        backend: new PostgresBackend({ connectionString: DATABASE_URL, schema }),
        remove: () => dropSchema(schema),
      };
    }
    case 'postgres+redis': {
      const schema = uniqueName('steadfast_bench');
      const prefix = uniqueName('steadfast-bench');
      return {
        backend: new RedisDispatchBackend({
          store: new PostgresBackend({ connectionString: DATABASE_URL, schema }),
          redisUrl: REDIS_URL,
          prefix,
        }),
        remove: async () => {
          await deleteKeys(`${prefix}:`);
          await dropSchema(schema);
        },
      };
    }
  }
}

const CONFIGURATION: Record<BackendKind, string> = {
  sqlite: 'SqliteBackend on a file in the temp folder (WAL, synchronous=FULL for ingest)',
  postgres: 'PostgresBackend, a schema of its own per run',
  'postgres+redis': 'RedisDispatchBackend over a PostgresBackend store, Redis keys under a prefix of its own',
};

class SteadfastSystem implements PeerSystem {
  readonly name: string;
  readonly configuration: string;
  private store: StoreHandle | null = null;
  private processor: ReliableEventProcessor | null = null;

  constructor(private readonly kind: BackendKind) {
    this.name = `steadfast ${kind}`;
    this.configuration =
      `${CONFIGURATION[kind]}; createProcessor({ backend, logger: false }); one destination via ` +
      'destination(name, { concurrency: 16, retry: { maxAttempts: 3, strategy: exponential, baseDelayMs: 10 }, ' +
      'circuitBreaker: false }); addEvent / addEvents; dead letters from deadLetters.stats()';
  }

  async setup(): Promise<void> {
    this.store = await openStore(this.kind);
    // No breaker: the peers have none, and the failure variant would trip it (5 failures in a row).
    this.processor = createProcessor({ backend: this.store.backend, logger: false });
  }

  async start(handler: BenchHandler, options: ConsumerOptions): Promise<void> {
    const processor = this.required();
    processor.destination(
      'sink',
      {
        concurrency: options.concurrency,
        retry: {
          maxAttempts: options.maxAttempts,
          strategy: 'exponential',
          baseDelayMs: options.backoffBaseMs,
        },
        circuitBreaker: false,
      },
      (event) =>
        handler({
          eventId: event.eventId,
          type: event.type,
          key: event.key ?? '',
          payload: event.payload as BenchPayload,
        }),
    );
    await processor.start();
  }

  async add(event: BenchEvent): Promise<void> {
    await this.required().addEvent(toInput(event));
  }

  async addBatch(events: readonly BenchEvent[]): Promise<void> {
    await this.required().addEvents(events.map(toInput));
  }

  async deadOrFailedCount(): Promise<number> {
    return (await this.required().deadLetters.stats()).count;
  }

  async teardown(): Promise<void> {
    try {
      await this.processor?.stop({ timeoutMs: 5_000 });
    } finally {
      this.processor = null;
      await this.store?.remove();
      this.store = null;
    }
  }

  private required(): ReliableEventProcessor {
    if (!this.processor) throw new Error(`${this.name}: setup() has not run`);
    return this.processor;
  }
}

function toInput(event: BenchEvent): { eventId: string; type: string; key: string; payload: JsonValue } {
  return { eventId: event.eventId, type: event.type, key: event.key, payload: event.payload };
}

export const steadfastSystems: readonly SystemFactory[] = (
  ['sqlite', 'postgres', 'postgres+redis'] as const
).map((kind) => ({
  id: `steadfast-${kind.replace('+', '-')}`,
  name: `steadfast ${kind}`,
  family: 'steadfast',
  create: () => new SteadfastSystem(kind),
}));
