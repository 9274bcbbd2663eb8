import { connect, createServer } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';

/** Where the test services are; override with the same variables the service reads. */
export const TEST_DATABASE_URL =
  process.env.STEADFAST_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.STEADFAST_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** In CI every service-backed test must run: an unreachable service is then a failure, not a skip. */
export const servicesRequired = process.env.STEADFAST_REQUIRE_SERVICES === '1';

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname || '127.0.0.1', port: Number(port || defaultPort) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Answers whether the named services answer on their ports. Outside CI a missing service makes
 * the caller skip (with a message saying why); with STEADFAST_REQUIRE_SERVICES=1 it throws.
 */
export async function servicesAvailable(...services: ('postgres' | 'redis')[]): Promise<boolean> {
  const missing: string[] = [];
  for (const service of services) {
    const ok =
      service === 'postgres'
        ? await reachable(TEST_DATABASE_URL, 5432)
        : await reachable(TEST_REDIS_URL, 6379);
    if (!ok)
      missing.push(
        service === 'postgres' ? `PostgreSQL at ${TEST_DATABASE_URL}` : `Redis at ${TEST_REDIS_URL}`,
      );
  }
  if (missing.length === 0) return true;
  const message = `${missing.join(' and ')} not reachable`;
  if (servicesRequired) throw new Error(`${message}, and STEADFAST_REQUIRE_SERVICES=1 requires it`);
  console.warn(
    `skipping: ${message} (set STEADFAST_TEST_DATABASE_URL / STEADFAST_TEST_REDIS_URL, or start them)`,
  );
  return false;
}

/** Drops a test's PostgreSQL schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** Deletes every key under `<prefix>:` (never the whole shared Redis). */
export async function deleteRedisKeys(prefix: string, url = TEST_REDIS_URL): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}
