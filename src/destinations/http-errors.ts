import { SteadfastError } from '../errors.js';

/** How much of a response body errors keep (in characters). */
export const BODY_EXCERPT_CHARS = 500;

export interface HttpStatusErrorInit {
  /** The request method, e.g. `POST`. */
  readonly method: string;
  /** The URL as shown in messages (without query string or credentials). */
  readonly url: string;
  readonly status: number;
  /** Whether another attempt may succeed; the retry policy classifies the error by it. */
  readonly retryable: boolean;
  /** The start of the response body; cut to 500 characters. */
  readonly bodyExcerpt: string;
}

/**
 * A receiver answered with a status that is not a success. The message reads
 * `POST https://host/path answered 503: <body excerpt>`. `retryable` tells the retry policy
 * whether to try again.
 */
export class HttpStatusError extends SteadfastError {
  readonly code = 'http_status';
  readonly status: number;
  readonly retryable: boolean;
  /** The first 500 characters of the response body. */
  readonly bodyExcerpt: string;

  constructor(init: HttpStatusErrorInit, options?: { cause?: unknown }) {
    const excerpt = excerptOf(init.bodyExcerpt);
    super(describeAnswer(init.method, init.url, init.status, excerpt), options);
    this.status = init.status;
    this.retryable = init.retryable;
    this.bodyExcerpt = excerpt;
  }
}

/** The first `BODY_EXCERPT_CHARS` characters (code points) of `text`. */
export function excerptOf(text: string): string {
  if (text.length <= BODY_EXCERPT_CHARS) return text;
  return Array.from(text).slice(0, BODY_EXCERPT_CHARS).join('');
}

/** `POST https://host/path answered 503: <excerpt>` (no colon part when the body is empty). */
function describeAnswer(method: string, url: string, status: number, excerpt: string): string {
  const answer = `${method} ${url} answered ${status}`;
  return excerpt.length > 0 ? `${answer}: ${excerpt}` : answer;
}

export function isHttpStatusError(value: unknown): value is HttpStatusError {
  return value instanceof HttpStatusError;
}
