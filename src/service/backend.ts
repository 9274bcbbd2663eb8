import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.js';
import { PostgresBackend } from '../backends/postgres/postgres-backend.js';
import { RedisDispatchBackend } from '../backends/redis/redis-dispatch-backend.js';
import { SqliteBackend } from '../backends/sqlite/sqlite-backend.js';
import type { SteadfastConfig } from '../config/schema.js';

/** Path of the embedded store inside the data directory. */
export function sqlitePath(dataDir: string): string {
  return join(dataDir, 'steadfast.db');
}

/**
 * The backend the configuration asks for: the SQLite file in the data directory, PostgreSQL,
 * or PostgreSQL with BullMQ on Redis carrying the work. Nothing connects until `open()`.
 */
export function createBackend(config: SteadfastConfig, logger: Logger): Backend {
  const { storage, dispatch } = config;
  if (storage.kind === 'sqlite') return new SqliteBackend({ path: sqlitePath(config.dataDir) });
  const store = new PostgresBackend({
    connectionString: storage.url,
    schema: storage.schema,
    poolSize: storage.poolSize,
    connectAttempts: storage.connectAttempts,
    connectRetryDelayMs: storage.connectRetryDelayMs,
  });
  if (dispatch.kind === 'store') return store;
  return new RedisDispatchBackend({
    store,
    redisUrl: dispatch.url,
    prefix: dispatch.prefix,
    reconcileIntervalMs: dispatch.reconcileIntervalMs,
    connectAttempts: dispatch.connectAttempts,
    connectRetryDelayMs: dispatch.connectRetryDelayMs,
    logger: logger.child({ component: 'redis-dispatch' }),
  });
}

/** "sqlite ./data/steadfast.db", "postgres (schema steadfast) + redis (prefix steadfast)" */
export function describeBackend(config: SteadfastConfig): string {
  const { storage, dispatch } = config;
  if (storage.kind === 'sqlite') return `sqlite ${sqlitePath(config.dataDir)}`;
  const store = `postgres (schema ${storage.schema})`;
  return dispatch.kind === 'redis' ? `${store} + redis (prefix ${dispatch.prefix})` : store;
}
