import { systemClock, type Clock } from '../../clock.js';
import { InvalidOptionError } from '../../errors.js';

export interface PostgresBackendOptions {
  /** `postgres://user:password@host:port/database` */
  readonly connectionString: string;
  /** Schema holding every table; created if missing. Lower-case letters, digits, `_`. default 'steadfast' */
  readonly schema?: string;
  /** Every stored time comes from this clock, never from the server's. default the system clock */
  readonly clock?: Clock;
  /** Pool size. default 10 */
  readonly poolSize?: number;
  /** Connect attempts at open() before giving up. default 10 */
  readonly connectAttempts?: number;
  /** The pause between connect attempts at open(). default 3000 */
  readonly connectRetryDelayMs?: number;
}

export interface ResolvedPostgresOptions {
  readonly connectionString: string;
  readonly schema: string;
  readonly clock: Clock;
  readonly poolSize: number;
  readonly connectAttempts: number;
  readonly connectRetryDelayMs: number;
  /** Tries of one operation on a retryable error (the first included). */
  readonly operationTries: number;
  /** First pause between those tries; doubled each time. */
  readonly operationRetryDelayMs: number;
}

export const POSTGRES_DEFAULTS = {
  schema: 'steadfast',
  poolSize: 10,
  connectAttempts: 10,
  connectRetryDelayMs: 3000,
  operationTries: 4,
  operationRetryDelayMs: 50,
} as const;

/** Schema names go into SQL text and a channel name (63 bytes at most), so they are kept plain. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,47}$/;

function positiveInteger(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new InvalidOptionError(`${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/** Fills in defaults and rejects bad values at construction, not at first use. */
export function resolveOptions(options: PostgresBackendOptions): ResolvedPostgresOptions {
  if (typeof options.connectionString !== 'string' || options.connectionString.length === 0) {
    throw new InvalidOptionError('connectionString is required');
  }
  const schema = options.schema ?? POSTGRES_DEFAULTS.schema;
  if (!SCHEMA_NAME.test(schema)) {
    throw new InvalidOptionError(
      `schema must be lower-case letters, digits and _ (at most 48, not starting with a digit), got ${schema}`,
    );
  }
  return {
    connectionString: options.connectionString,
    schema,
    clock: options.clock ?? systemClock,
    poolSize: positiveInteger('poolSize', options.poolSize ?? POSTGRES_DEFAULTS.poolSize, 1),
    connectAttempts: positiveInteger(
      'connectAttempts',
      options.connectAttempts ?? POSTGRES_DEFAULTS.connectAttempts,
      1,
    ),
    connectRetryDelayMs: positiveInteger(
      'connectRetryDelayMs',
      options.connectRetryDelayMs ?? POSTGRES_DEFAULTS.connectRetryDelayMs,
      0,
    ),
    operationTries: POSTGRES_DEFAULTS.operationTries,
    operationRetryDelayMs: POSTGRES_DEFAULTS.operationRetryDelayMs,
  };
}
