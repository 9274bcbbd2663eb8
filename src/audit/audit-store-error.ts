import { BackendError } from '../errors.js';

/** SQLite result codes (primary part) after which another attempt may succeed. */
const TRANSIENT_SQLITE_CODES: readonly string[] = [
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_IOERR',
  'SQLITE_FULL',
];

/**
 * The audit store could not read or write. A `BackendError` (code `backend_error`) that says
 * whether another attempt may succeed, so the retry policy retries a locked or full database
 * instead of dead-lettering the event at once.
 */
export class AuditStoreError extends BackendError {
  /** `true` for a busy or locked database, an I/O error, a full disk, or a store not (yet) open. */
  readonly retryable: boolean;

  constructor(message: string, options: { retryable: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable;
  }

  /** Wraps an error thrown by better-sqlite3, classifying it by its SQLite result code. */
  static from(action: string, error: unknown): AuditStoreError {
    if (error instanceof AuditStoreError) return error;
    const code = (error as { code?: unknown } | null)?.code;
    const primary = typeof code === 'string' ? code.split('_').slice(0, 2).join('_') : '';
    const reason = error instanceof Error ? error.message : String(error);
    return new AuditStoreError(`audit store: ${action} failed: ${reason}`, {
      retryable: TRANSIENT_SQLITE_CODES.includes(primary),
      cause: error,
    });
  }
}
