/**
 * Every error Steadfast raises is a `SteadfastError` with a stable, machine-readable `code`.
 * Match on `code` (or use the type guards), never on message text.
 */
export type ErrorCode =
  | 'validation_error'
  | 'permanent_error'
  | 'retry_after'
  | 'handler_timeout'
  | 'lease_expired'
  | 'lease_lost'
  | 'shutting_down'
  | 'processor_closed'
  | 'not_found'
  | 'invalid_option'
  | 'destination_conflict'
  | 'backend_error'
  | 'http_status'
  | 'config_error'
  | 'circuit_open'
  | 'retry_exhausted';

export abstract class SteadfastError extends Error {
  abstract readonly code: ErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export function isSteadfastError(value: unknown): value is SteadfastError {
  return value instanceof SteadfastError;
}

/** One field of an event (or option) that failed validation. */
export interface FieldIssue {
  /** Dotted path of the field, e.g. `payload` or `metadata.tenant`. */
  readonly field: string;
  readonly message: string;
}

/** A bad event: nothing was stored. `field` names the first offending field. */
export class ValidationError extends SteadfastError {
  readonly code = 'validation_error';
  readonly field: string;
  readonly issues: readonly FieldIssue[];
  /** Position of the bad event in a batch, if it came in one. */
  readonly index: number | undefined;

  constructor(issues: readonly FieldIssue[], options?: { cause?: unknown; index?: number }) {
    const first = issues[0] ?? { field: '(event)', message: 'invalid event' };
    const where = options?.index === undefined ? '' : `events[${options.index}].`;
    super(`invalid event: ${where}${first.field}: ${first.message}`, options);
    this.field = first.field;
    this.issues = issues;
    this.index = options?.index;
  }
}

/** Thrown by a handler: the delivery is dead-lettered now, with no further attempts. */
export class PermanentError extends SteadfastError {
  readonly code = 'permanent_error';
}

/** Thrown by a handler: retry this delivery after `retryAfterMs` (counts as an attempt). */
export class RetryAfterError extends SteadfastError {
  readonly code = 'retry_after';
  readonly retryAfterMs: number;

  constructor(retryAfterMs: number, message?: string, options?: { cause?: unknown }) {
    if (!Number.isFinite(retryAfterMs) || retryAfterMs < 0) {
      throw new RangeError(`retryAfterMs must be a finite number >= 0, got ${retryAfterMs}`);
    }
    super(message ?? `retry requested in ${retryAfterMs} ms`, options);
    this.retryAfterMs = retryAfterMs;
  }
}

/** A handler did not settle within its destination's `timeoutMs`. Retryable. */
export class HandlerTimeoutError extends SteadfastError {
  readonly code = 'handler_timeout';
}

/** The worker that held a delivery's lease stopped renewing it (it died or stalled). */
export class LeaseExpiredError extends SteadfastError {
  readonly code = 'lease_expired';
}

/** This process no longer holds the lease it tried to settle (another worker took it over). */
export class LeaseLostError extends SteadfastError {
  readonly code = 'lease_lost';
}

/** The processor is stopping: in-flight work is released, new work is refused. */
export class ShuttingDownError extends SteadfastError {
  readonly code = 'shutting_down';
}

/** The processor was stopped and cannot be used again. */
export class ProcessorClosedError extends SteadfastError {
  readonly code = 'processor_closed';
}

export class NotFoundError extends SteadfastError {
  readonly code = 'not_found';
}

/** An option value is out of range or of the wrong type. Raised at construction, not first use. */
export class InvalidOptionError extends SteadfastError {
  readonly code = 'invalid_option';
}

/** A destination name was declared twice in one processor. */
export class DestinationConflictError extends SteadfastError {
  readonly code = 'destination_conflict';
}

/** The storage backend failed (disk full, database locked for too long, connection lost). */
export class BackendError extends SteadfastError {
  readonly code = 'backend_error';
}

/**
 * A circuit breaker refused a call: it is open, or half-open with every probe slot taken.
 * `reopensAt` is when an open circuit lets a probe through (epoch ms), `null` when half-open.
 */
export class CircuitOpenError extends SteadfastError {
  readonly code = 'circuit_open';
  readonly reopensAt: number | null;

  constructor(reopensAt: number | null, message?: string, options?: { cause?: unknown }) {
    super(
      message ??
        (reopensAt === null
          ? 'circuit is half-open and every probe slot is taken'
          : `circuit is open until ${new Date(reopensAt).toISOString()}`),
      options,
    );
    this.reopensAt = reopensAt;
  }
}

export function isCircuitOpenError(value: unknown): value is CircuitOpenError {
  return value instanceof CircuitOpenError;
}

/** The name, code and message of one failed attempt (see `executeWithRetry`). */
export interface AttemptErrorInfo {
  readonly name: string;
  readonly code: string | null;
  readonly message: string;
}

/** One attempt made by `executeWithRetry`. */
export interface AttemptHistory {
  /** 1-based. */
  readonly number: number;
  readonly startedAt: number;
  readonly durationMs: number;
  /** `null` when the attempt succeeded. */
  readonly error: AttemptErrorInfo | null;
  /** The wait scheduled after this attempt before the next one; `null` when none followed. */
  readonly delayMs: number | null;
}

/**
 * `executeWithRetry` gave up: the last error was not retryable (`reason: 'permanent'`) or the
 * attempts ran out (`reason: 'exhausted'`). `cause` is the last error; `attempts` the history.
 */
export class RetryExhaustedError extends SteadfastError {
  readonly code = 'retry_exhausted';
  readonly reason: 'permanent' | 'exhausted';
  readonly attempts: readonly AttemptHistory[];

  constructor(
    reason: 'permanent' | 'exhausted',
    attempts: readonly AttemptHistory[],
    options: { cause: unknown },
  ) {
    const last = attempts[attempts.length - 1]?.error;
    const why = reason === 'permanent' ? 'a non-retryable error' : 'the last allowed attempt failed';
    super(
      `gave up after ${attempts.length} attempt${attempts.length === 1 ? '' : 's'} (${why})` +
        (last ? `: ${last.name}: ${last.message}` : ''),
      options,
    );
    this.reason = reason;
    this.attempts = attempts;
  }
}

export function isRetryExhaustedError(value: unknown): value is RetryExhaustedError {
  return value instanceof RetryExhaustedError;
}
