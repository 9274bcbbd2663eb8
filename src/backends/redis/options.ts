import { systemClock, type Clock } from '../../clock.js';
import { InvalidOptionError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';
import type { DispatchSource } from '../dispatch-source.js';

export interface RedisDispatchOptions {
  /** The store of record (PostgreSQL): events, deliveries, leases, dead letters. */
  readonly store: DispatchSource;
  /** redis://host:port[/db] */
  readonly redisUrl: string;
  /** Key prefix of every BullMQ queue (one queue per destination). default 'steadfast' */
  readonly prefix?: string;
  readonly clock?: Clock;
  /**
   * How often the reconciler compares the store with Redis and re-enqueues what Redis lost
   * (a restart without persistence, FLUSHALL, eviction). It also runs at once on open and
   * after every reconnect. default 1000 ms
   */
  readonly reconcileIntervalMs?: number;
  readonly logger?: Logger;
  /** How many times `open()` waits for Redis before it fails with a `BackendError`. default 10 */
  readonly connectAttempts?: number;
  /** How long each of those waits lasts, ms. default 3000 */
  readonly connectRetryDelayMs?: number;
}

export interface ResolvedRedisDispatchOptions {
  readonly store: DispatchSource;
  readonly redisUrl: string;
  readonly prefix: string;
  readonly clock: Clock;
  readonly reconcileIntervalMs: number;
  readonly logger: Logger | null;
  readonly connectAttempts: number;
  readonly connectRetryDelayMs: number;
}

export const REDIS_DISPATCH_DEFAULTS = {
  prefix: 'steadfast',
  reconcileIntervalMs: 1000,
  connectAttempts: 10,
  connectRetryDelayMs: 3000,
} as const;

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isInteger(resolved) || resolved < 1) {
    throw new InvalidOptionError(`${name} must be an integer >= 1, got ${String(value)}`);
  }
  return resolved;
}

/** Fills in defaults and rejects bad values at construction, not at first use. */
export function resolveRedisDispatchOptions(options: RedisDispatchOptions): ResolvedRedisDispatchOptions {
  let url: URL;
  try {
    url = new URL(options.redisUrl);
  } catch (cause) {
    throw new InvalidOptionError(`redisUrl is not a URL: ${String(options.redisUrl)}`, { cause });
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new InvalidOptionError(`redisUrl must start with redis:// or rediss://, got ${url.protocol}//`);
  }
  const prefix = options.prefix ?? REDIS_DISPATCH_DEFAULTS.prefix;
  if (prefix.length === 0) throw new InvalidOptionError('prefix must not be empty');
  return {
    store: options.store,
    redisUrl: options.redisUrl,
    prefix,
    clock: options.clock ?? systemClock,
    reconcileIntervalMs: positiveInt(
      'reconcileIntervalMs',
      options.reconcileIntervalMs,
      REDIS_DISPATCH_DEFAULTS.reconcileIntervalMs,
    ),
    logger: options.logger ?? null,
    connectAttempts: positiveInt(
      'connectAttempts',
      options.connectAttempts,
      REDIS_DISPATCH_DEFAULTS.connectAttempts,
    ),
    connectRetryDelayMs: positiveInt(
      'connectRetryDelayMs',
      options.connectRetryDelayMs,
      REDIS_DISPATCH_DEFAULTS.connectRetryDelayMs,
    ),
  };
}
