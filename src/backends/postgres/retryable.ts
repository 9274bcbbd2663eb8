import pg from 'pg';
import { BackendError, isSteadfastError } from '../../errors.js';

/**
 * SQLSTATE codes worth trying again: the transaction lost a race, or the server is starting,
 * stopping or full. Class 08 (connection exceptions) is matched as a whole.
 */
const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '53400', // configuration_limit_exceeded
]);

/** Socket-level failures: the server went away or is not there yet. */
const RETRYABLE_SYSCALL_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const code = (error as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** The server answered with an error: the connection itself is still fine. */
export function isServerError(error: unknown): error is pg.DatabaseError {
  return error instanceof pg.DatabaseError;
}

/**
 * Worth another try: a retryable SQLSTATE, a socket failure, or any other failure of the client
 * that is not a server answer (connection terminated, connect timeout). Steadfast's own errors
 * (a lost lease, a closed store) never are.
 */
export function isRetryable(error: unknown): boolean {
  if (isSteadfastError(error)) return false;
  const code = codeOf(error);
  if (isServerError(error)) {
    return code !== undefined && (RETRYABLE_SQLSTATES.has(code) || code.startsWith('08'));
  }
  if (code !== undefined && RETRYABLE_SYSCALL_CODES.has(code)) return true;
  return error instanceof Error;
}

/** Steadfast errors pass through; anything else becomes a `BackendError` carrying it as cause. */
export function toBackendError(error: unknown, what: string): Error {
  if (isSteadfastError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = codeOf(error);
  return new BackendError(`PostgreSQL ${what} failed${code ? ` (${code})` : ''}: ${message}`, {
    cause: error,
  });
}
