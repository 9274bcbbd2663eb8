/**
 * Where PostgreSQL and Redis are for the peer comparison, unique names for what a run creates,
 * and the clean-up helpers every adapter shares.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';

export const DATABASE_URL =
  process.env.STEADFAST_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.STEADFAST_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A name no other run (or concurrent benchmark) uses: `<base>_<12 hex>`, valid as a schema name. */
export function uniqueName(base: string): string {
  return `${base}_${randomBytes(6).toString('hex')}`;
}

/** A SQL identifier, quoted. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Runs `fn` with a short-lived single-connection pool, closed afterwards. */
export async function withAdmin<T>(fn: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

export async function dropSchema(schema: string): Promise<void> {
  await withAdmin((pool) => pool.query(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`));
}

export function redisClient(): Redis {
  return new Redis(REDIS_URL, { maxRetriesPerRequest: 3, lazyConnect: false });
}

/** Deletes every key starting with `prefix` (SCAN + UNLINK; never FLUSHALL). Answers how many. */
export async function deleteKeys(prefix: string): Promise<number> {
  if (prefix.length < 8) throw new Error(`refusing to delete keys under the short prefix ${prefix}`);
  const redis = redisClient();
  try {
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    redis.disconnect();
  }
}

/** host and port of a redis:// URL, for clients that take them apart. */
export function redisHostPort(url: string = REDIS_URL): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname || '127.0.0.1', port: Number(parsed.port || 6379) };
}
