import pg from 'pg';
import { BackendError, isSteadfastError } from '../../errors.js';
import { isRetryable, isServerError, toBackendError } from './retryable.js';
import type { Statement } from './statements.js';

/** What every operation runs its SQL through: one connection, inside or outside a transaction. */
export interface Sql {
  /** A `Statement` (see `prepared`) is sent by name, so each connection plans it once. */
  query<R extends object>(text: string | Statement, values?: readonly unknown[]): Promise<R[]>;
}

export interface DatabaseOptions {
  readonly connectionString: string;
  readonly schema: string;
  readonly poolSize: number;
  /** Tries of one operation when the error is retryable (the first try included). */
  readonly tries: number;
  /** Pause before the first retry; doubled for each further one. */
  readonly retryDelayMs: number;
  /**
   * Called (on a later turn) when an operation succeeds after some operation lost its
   * connection. A write whose connection failed may have committed without its caller learning
   * it, so what it made claimable was never announced: the caller looks again.
   */
  readonly onRecovered?: () => void;
  /**
   * `false` runs every commit of this pool with `synchronous_commit = off`: it returns before its
   * WAL record is flushed (a later synchronous commit on any connection flushes it too). For
   * bookkeeping only — claims, lease renewals, settlements — where losing the last moments to a
   * server crash costs at most a repeated attempt. default true
   */
  readonly synchronousCommit?: boolean;
}

/** int8 (bigint, count(*)) as a JS number: ids and epoch milliseconds stay far below 2^53. */
const TYPES = new pg.TypeOverrides();
TYPES.setTypeParser(20, (value: string) => Number(value));

/** Connection settings shared by the pool and the listening connection. */
export function clientConfig(options: Pick<DatabaseOptions, 'connectionString' | 'schema'>): pg.ClientConfig {
  return {
    connectionString: options.connectionString,
    // Every table name resolves in the backend's schema; the schema name is checked at construction.
    options: `-c search_path=${options.schema}`,
    types: TYPES,
    keepAlive: true,
    connectionTimeoutMillis: 5000,
    // Names the store in pg_stat_activity (at most 58 characters: the schema name is at most 48).
    application_name: `steadfast ${options.schema}`,
  };
}

/** Pooled connections whose socket failed: released to be destroyed, never reused. */
const dead = new WeakSet<pg.PoolClient>();

const pause = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });

/**
 * The connection pool. Every operation runs on one pooled connection and is tried again, with
 * a short doubling pause, when PostgreSQL answers with a retryable error or the connection
 * drops; after that it rejects with `BackendError`. A connection that failed is discarded, so
 * the pool heals once the server is back.
 */
export class Database {
  private readonly pool: pg.Pool;
  private closed = false;
  /** Operations under way, so `close` can wait for them. */
  private readonly running = new Set<Promise<unknown>>();
  /** An operation lost its connection (or could not get one) since the last one that worked. */
  private disturbed = false;

  constructor(private readonly options: DatabaseOptions) {
    const config = clientConfig(options);
    if (options.synchronousCommit === false) config.options = `${config.options} -c synchronous_commit=off`;
    this.pool = new pg.Pool({ ...config, max: options.poolSize, idleTimeoutMillis: 30_000 });
    // An idle connection that dies (server restart, terminated backend) is dropped by the pool;
    // without a listener the error would crash the process.
    this.pool.on('error', () => undefined);
    // The pool listens only while a connection is idle. A connection that dies while checked out
    // emits 'error' on the client itself (even with a query running, which also rejects): without
    // a listener of its own for its whole life that crashes the process. The connection is marked
    // dead, so the holder gives it back to be destroyed, never to the idle list.
    this.pool.on('connect', (client) => {
      client.on('error', () => {
        dead.add(client);
      });
    });
  }

  /** Runs `work` on one connection, each statement committing on its own. */
  run<T>(what: string, work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.track(this.withRetry(what, () => this.once(work, false)));
  }

  /** Runs `work` inside one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(what: string, work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.track(this.withRetry(what, () => this.once(work, true)));
  }

  /** Like `transaction`, but tried once: the caller decides what a failure means. */
  transactionOnce<T>(what: string, work: (sql: Sql) => Promise<T>): Promise<T> {
    return this.track(
      this.once(work, true).catch((error: unknown) => {
        throw toBackendError(error, what);
      }),
    );
  }

  /** Resolves once PostgreSQL answers, trying `attempts` times `delayMs` apart. */
  async connect(attempts: number, delayMs: number): Promise<void> {
    let last: unknown;
    for (let attempt = 1; attempt <= attempts && !this.closed; attempt++) {
      try {
        await this.pool.query('SELECT 1');
        return;
      } catch (error) {
        last = error;
        if (attempt < attempts) await pause(delayMs);
      }
    }
    throw new BackendError(
      `PostgreSQL did not answer after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${
        last instanceof Error ? last.message : String(last)
      }`,
      { cause: last },
    );
  }

  /** A dedicated connection, outside the pool's retries (migrations hold a session lock on it). */
  async session<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      return await work(wrap(client));
    } catch (error) {
      broken = !connectionIntact(error);
      throw error;
    } finally {
      client.release(broken || dead.has(client));
    }
  }

  /** Waits for operations under way, then closes every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.running]);
    await this.pool.end();
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new BackendError('the store is closed'));
    this.running.add(promise);
    const forget = () => this.running.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  private async withRetry<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let tried = 1; ; tried++) {
      try {
        return await attempt();
      } catch (error) {
        if (tried >= this.options.tries || this.closed || !isRetryable(error)) {
          throw toBackendError(error, what);
        }
        await pause(this.options.retryDelayMs * 2 ** (tried - 1));
      }
    }
  }

  private async once<T>(work: (sql: Sql) => Promise<T>, transactional: boolean): Promise<T> {
    let result: T;
    try {
      result = await this.attempt(work, transactional);
    } catch (error) {
      if (!connectionIntact(error)) this.disturbed = true;
      throw error;
    }
    if (this.disturbed) {
      this.disturbed = false;
      const onRecovered = this.options.onRecovered;
      // After the caller has seen this result and announced what it committed.
      if (onRecovered) setImmediate(onRecovered);
    }
    return result;
  }

  private async attempt<T>(work: (sql: Sql) => Promise<T>, transactional: boolean): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      if (!transactional) return await work(wrap(client));
      await client.query('BEGIN');
      try {
        const result = await work(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        // Only the transaction is lost when the connection still answers.
        if (connectionIntact(error)) await client.query('ROLLBACK');
        throw error;
      }
    } catch (error) {
      broken = !connectionIntact(error);
      throw error;
    } finally {
      client.release(broken || dead.has(client));
    }
  }
}

/** The error came from the server or from Steadfast: the connection itself still works. */
function connectionIntact(error: unknown): boolean {
  if (isSteadfastError(error)) return true;
  if (!isServerError(error)) return false;
  // Connection exceptions and a server shutting down end the session along with the statement.
  const code = error.code ?? '';
  return !code.startsWith('08') && !code.startsWith('57P');
}

function wrap(client: pg.PoolClient): Sql {
  return {
    async query<R extends object>(text: string | Statement, values?: readonly unknown[]): Promise<R[]> {
      const result =
        typeof text === 'string'
          ? await client.query<R>(text, values as unknown[] | undefined)
          : await client.query<R>({
              name: text.name,
              text: text.text,
              values: values as unknown[] | undefined,
            });
      return result.rows;
    },
  };
}
