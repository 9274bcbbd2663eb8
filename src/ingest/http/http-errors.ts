/** Every error the HTTP API answers with: a stable code, its status, a default message. */
export const HTTP_ERRORS = {
  invalid_json: { status: 400, message: 'the body is not valid JSON' },
  invalid_event: { status: 400, message: 'the event is invalid' },
  invalid_request: { status: 400, message: 'the request is invalid' },
  missing_signature: { status: 401, message: 'the request is not signed' },
  invalid_signature: { status: 401, message: 'the signature does not match any active secret' },
  stale_timestamp: { status: 401, message: 'webhook-timestamp is outside the accepted window' },
  unauthorized: { status: 401, message: 'an admin token is required (Authorization: Bearer <token>)' },
  forbidden: { status: 403, message: 'the admin token is not valid' },
  not_found: { status: 404, message: 'not found' },
  payload_too_large: { status: 413, message: 'the body is larger than the limit' },
  unsupported_media_type: { status: 415, message: 'send JSON with content-type: application/json' },
  rate_limited: { status: 429, message: 'too many requests; retry after the time in Retry-After' },
  internal_error: { status: 500, message: 'internal error' },
  shutting_down: { status: 503, message: 'the service is shutting down' },
  store_unavailable: { status: 503, message: 'the store cannot commit right now; nothing was stored' },
  not_ready: { status: 503, message: 'the service is not ready' },
} as const satisfies Record<string, { status: number; message: string }>;

export type HttpErrorCode = keyof typeof HTTP_ERRORS;

/** Thrown inside route handlers; the error handler turns it into `{ error: { code, message, details? } }`. */
export class HttpError extends Error {
  readonly status: number;

  constructor(
    readonly code: HttpErrorCode,
    message?: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message ?? HTTP_ERRORS[code].message);
    this.status = HTTP_ERRORS[code].status;
  }
}

export function errorBody(code: HttpErrorCode, message: string, details?: unknown) {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}
