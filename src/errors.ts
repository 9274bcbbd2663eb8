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
  | 'config_error';

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
