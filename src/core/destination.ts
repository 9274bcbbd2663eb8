import type { Logger } from 'pino';
import { z } from 'zod';
import type { DeadLetterKeyPolicy, DestinationSpec } from '../backends/backend.js';
import { InvalidOptionError } from '../errors.js';
import type { SteadfastEvent } from '../event.js';
import type { JsonValue } from '../json.js';
import type { Clock } from '../clock.js';
import { CircuitBreaker, type CircuitBreakerOptions } from '../policies/circuit-breaker.js';
import { createRetryPolicy, type RetryOptions, type RetryPolicy } from '../policies/retry-policy.js';

/** What a handler gets besides the event. */
export interface HandlerContext {
  /** 1-based attempt number of this delivery (a replay starts again at 1). */
  readonly attempt: number;
  readonly deliveryId: string;
  readonly destination: string;
  /** Aborted when the attempt times out, the lease is lost, or the processor stops. */
  readonly signal: AbortSignal;
  /** A child logger carrying eventId, correlationId, destination, deliveryId and attempt. */
  readonly logger: Logger;
}

/**
 * Handles one event for one destination. Resolve to succeed; throw to fail. Throw
 * `PermanentError` to dead-letter at once, `RetryAfterError(ms)` to choose the retry time.
 * Handlers must be idempotent by `event.eventId`: delivery is at least once.
 */
export type Handler<P extends JsonValue = JsonValue> = (
  event: SteadfastEvent<P>,
  ctx: HandlerContext,
) => Promise<unknown> | unknown;

export interface DestinationOptions {
  /** Event types this destination receives: names, `prefix.*` patterns, or `'*'`. default `'*'` */
  types?: readonly string[] | '*';
  /** Attempts running at once. default 10 */
  concurrency?: number;
  /** Same-key events one at a time, in order. default false */
  ordered?: boolean;
  /** When a delivery of a key is dead-lettered: `skip` lets the key go on, `block` holds it. default `skip` */
  onDeadLetter?: DeadLetterKeyPolicy;
  /** Retry policy; defaults: exponential from 1000 ms, ×2, max 30000 ms, ±10 % jitter, 5 attempts. */
  retry?: RetryOptions;
  /** An attempt that has not settled by then fails with `HandlerTimeoutError`. default 30000 */
  timeoutMs?: number;
  /** How long a claimed delivery stays leased without renewal; renewed every third while running. default 30000 */
  leaseMs?: number;
  /**
   * The destination's circuit breaker, or `false` for none. While it is open nothing is claimed
   * for the destination and no attempts are spent; a failed half-open probe is not charged to
   * its delivery. default: on, with `CIRCUIT_BREAKER_DEFAULTS` (5 consecutive failures or 50 %
   * of at least 10 calls in 60 s open it for 30 s; 1 probe)
   */
  circuitBreaker?: Omit<CircuitBreakerOptions, 'clock'> | false;
}

export const DESTINATION_DEFAULTS = {
  types: '*',
  concurrency: 10,
  ordered: false,
  onDeadLetter: 'skip',
  timeoutMs: 30_000,
  leaseMs: 30_000,
} as const;

const optionsSchema = z.strictObject({
  types: z.union([z.literal('*'), z.array(z.string().min(1).max(200)).min(1)]).optional(),
  concurrency: z.int().min(1).max(10_000).optional(),
  ordered: z.boolean().optional(),
  onDeadLetter: z.enum(['skip', 'block']).optional(),
  retry: z.record(z.string(), z.unknown()).optional(),
  timeoutMs: z.int().min(1).max(86_400_000).optional(),
  leaseMs: z.int().min(50).max(86_400_000).optional(),
  circuitBreaker: z.union([z.literal(false), z.record(z.string(), z.number())]).optional(),
});

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;

/** A destination with every option resolved. */
export interface ResolvedDestination {
  readonly spec: DestinationSpec;
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly leaseMs: number;
  readonly retry: RetryPolicy;
  /** Null when the destination runs without one. */
  readonly breaker: CircuitBreaker | null;
  readonly handler: Handler;
}

/** Validates options at declaration time: a bad value throws `InvalidOptionError` naming it. */
export function resolveDestination(
  name: string,
  options: DestinationOptions,
  handler: Handler,
  clock: Clock,
): ResolvedDestination {
  if (!NAME.test(name)) {
    throw new InvalidOptionError(
      `destination name must be 1-200 characters of letters, digits, '.', '_', ':' or '-', got ${JSON.stringify(name)}`,
    );
  }
  if (typeof handler !== 'function') {
    throw new InvalidOptionError(`destination ${name}: handler must be a function`);
  }
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(options)';
    throw new InvalidOptionError(`destination ${name}: ${field}: ${issue?.message ?? 'invalid'}`);
  }
  const o = parsed.data;
  return {
    spec: {
      name,
      types: o.types ?? DESTINATION_DEFAULTS.types,
      ordered: o.ordered ?? DESTINATION_DEFAULTS.ordered,
      onDeadLetter: o.onDeadLetter ?? DESTINATION_DEFAULTS.onDeadLetter,
    },
    concurrency: o.concurrency ?? DESTINATION_DEFAULTS.concurrency,
    timeoutMs: o.timeoutMs ?? DESTINATION_DEFAULTS.timeoutMs,
    leaseMs: o.leaseMs ?? DESTINATION_DEFAULTS.leaseMs,
    retry: createRetryPolicy(options.retry ?? {}),
    breaker: o.circuitBreaker === false ? null : new CircuitBreaker({ ...options.circuitBreaker, clock }),
    handler: handler as Handler,
  };
}
