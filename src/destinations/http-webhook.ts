import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Handler } from '../core/destination.js';
import { HandlerTimeoutError, InvalidOptionError, PermanentError, RetryAfterError } from '../errors.js';
import type { SteadfastEvent } from '../event.js';
import { BODY_EXCERPT_CHARS, excerptOf, HttpStatusError } from './http-errors.js';
import { decodeWebhookSecret, signStandardWebhook, STANDARD_WEBHOOK_HEADERS } from './standard-webhooks.js';

/**
 * Overrides of the default response rules. A status is looked up in this order: `successStatuses`,
 * then `permanentStatuses`, then `retryStatuses`, then the defaults (see `classifyHttpStatus`).
 */
export interface HttpResponseRules {
  /** Statuses that count as delivered. */
  readonly successStatuses?: readonly number[];
  /** Statuses that dead-letter at once (`PermanentError`). */
  readonly permanentStatuses?: readonly number[];
  /** Statuses that are retried (`HttpStatusError` with `retryable: true`, or `RetryAfterError`). */
  readonly retryStatuses?: readonly number[];
}

export interface HttpDestinationOptions {
  /** Where events are POSTed: an `http://` or `https://` URL without credentials (use `headers`). */
  readonly url: string;
  /**
   * Standard Webhooks signing secret, `whsec_<base64>` or a plain string. When set, every request
   * carries `webhook-id` (the event id), `webhook-timestamp` (unix seconds) and `webhook-signature`.
   * default: unsigned
   */
  readonly secret?: string;
  /**
   * Extra static headers. They override the default `content-type`, `user-agent` and
   * `x-correlation-id`; the `webhook-*` headers are reserved. default none
   */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * The request (sending it and reading the answer) is aborted after this many ms and the attempt
   * fails with a retryable `HandlerTimeoutError`. Keep it below the destination's own `timeoutMs`.
   * default 10000
   */
  readonly timeoutMs?: number;
  /** A longer `Retry-After` is shortened to this many ms. default 3600000 (1 hour) */
  readonly maxRetryAfterMs?: number;
  /** Overrides of the default response rules. default: the rules of `classifyHttpStatus` */
  readonly rules?: HttpResponseRules;
}

export const HTTP_DESTINATION_DEFAULTS = {
  timeoutMs: 10_000,
  maxRetryAfterMs: 3_600_000,
} as const;

/** What an answer's status means for the delivery. */
export type HttpStatusVerdict = 'success' | 'retry' | 'permanent';

/** Statuses retried by default besides every 5xx. */
export const DEFAULT_RETRY_STATUSES: readonly number[] = [408, 425, 429];

/** Retried statuses whose `Retry-After` header (seconds or an HTTP date) sets the next attempt's time. */
export const RETRY_AFTER_STATUSES: readonly number[] = [429, 503];

/** Body bytes kept for the excerpt: enough for 500 characters of any UTF-8 text. */
const EXCERPT_BYTES = BODY_EXCERPT_CHARS * 4;
/** Bodies up to this size are read to the end so the connection can be reused; longer ones are cut off. */
const DRAIN_LIMIT_BYTES = 64 * 1024;
const METHOD = 'POST';
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Every HTTP-date form (IMF-fixdate, RFC 850, asctime) opens with a day name. */
const HTTP_DATE_START = /^[A-Za-z]{3,9},? /;
const RESERVED_HEADERS = new Set<string>(Object.values(STANDARD_WEBHOOK_HEADERS));

/**
 * Decides what an answer means. `rules` come first (success, then permanent, then retry); the
 * defaults are: 2xx → success; 408, 425, 429 and 5xx → retry; every other 4xx (410 included) →
 * permanent; anything else (a 3xx: redirects are not followed) → retry.
 */
export function classifyHttpStatus(status: number, rules: HttpResponseRules = {}): HttpStatusVerdict {
  if (rules.successStatuses?.includes(status)) return 'success';
  if (rules.permanentStatuses?.includes(status)) return 'permanent';
  if (rules.retryStatuses?.includes(status)) return 'retry';
  if (status >= 200 && status < 300) return 'success';
  if (DEFAULT_RETRY_STATUSES.includes(status) || (status >= 500 && status < 600)) return 'retry';
  if (status >= 400 && status < 500) return 'permanent';
  return 'retry';
}

/**
 * Milliseconds a `Retry-After` value asks to wait: whole seconds, or an HTTP date (a date in the
 * past gives 0). `null` when the header is absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | null {
  const text = value?.trim();
  if (!text) return null;
  if (/^\d+$/.test(text)) {
    const ms = Number(text) * 1000;
    return Number.isFinite(ms) ? ms : null;
  }
  const at = HTTP_DATE_START.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** The JSON body of a webhook request: the whole event. */
export function webhookBody(event: SteadfastEvent): string {
  return JSON.stringify({
    eventId: event.eventId,
    type: event.type,
    payload: event.payload,
    key: event.key,
    occurredAt: event.occurredAt,
    receivedAt: event.receivedAt,
    correlationId: event.correlationId,
    source: event.source,
    metadata: event.metadata,
  });
}

function isHttpUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return (url.protocol === 'http:' || url.protocol === 'https:') && !url.username && !url.password;
}

function isValidSecret(value: string): boolean {
  try {
    return decodeWebhookSecret(value).length > 0;
  } catch {
    return false;
  }
}

const statusList = z.array(z.int().min(100).max(599)).max(500);

const optionsSchema = z.strictObject({
  url: z.string().refine(isHttpUrl, 'must be an http:// or https:// URL without credentials'),
  secret: z.string().refine(isValidSecret, 'must be a non-empty string or whsec_<base64>').optional(),
  headers: z
    .record(
      z
        .string()
        .regex(HEADER_NAME, 'must be a valid header name')
        .refine((name) => !RESERVED_HEADERS.has(name.toLowerCase()), 'is set by the destination'),
      z.string().refine((value) => !/[\r\n\0]/.test(value), 'must not contain CR, LF or NUL'),
    )
    .optional(),
  timeoutMs: z.int().min(1).max(86_400_000).optional(),
  maxRetryAfterMs: z.int().min(0).max(86_400_000).optional(),
  rules: z
    .strictObject({
      successStatuses: statusList.optional(),
      permanentStatuses: statusList.optional(),
      retryStatuses: statusList.optional(),
    })
    .optional(),
});

interface HttpDestinationConfig {
  readonly url: string;
  /** The URL as shown in error messages: origin and path, no query string. */
  readonly displayUrl: string;
  readonly secret: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly maxRetryAfterMs: number;
  readonly rules: HttpResponseRules;
}

function lowerCaseKeys(headers: Readonly<Record<string, string>> = {}): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

function resolveOptions(options: HttpDestinationOptions): HttpDestinationConfig {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(options)';
    throw new InvalidOptionError(`http destination: ${field}: ${issue?.message ?? 'invalid'}`);
  }
  const o = parsed.data;
  const url = new URL(o.url);
  return {
    url: url.href,
    displayUrl: `${url.origin}${url.pathname}`,
    secret: o.secret,
    headers: lowerCaseKeys(o.headers),
    timeoutMs: o.timeoutMs ?? HTTP_DESTINATION_DEFAULTS.timeoutMs,
    maxRetryAfterMs: o.maxRetryAfterMs ?? HTTP_DESTINATION_DEFAULTS.maxRetryAfterMs,
    rules: o.rules ?? {},
  };
}

let userAgent: string | undefined;

/** `steadfast/<version of this package>`, read once from package.json. */
function steadfastUserAgent(): string {
  if (userAgent === undefined) {
    let version = '0.0.0';
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version?: unknown;
      };
      if (typeof pkg.version === 'string') version = pkg.version;
    } catch {
      // Bundled without its package.json: keep the placeholder version.
    }
    userAgent = `steadfast/${version}`;
  }
  return userAgent;
}

function requestHeaders(
  config: HttpDestinationConfig,
  event: SteadfastEvent,
  body: string,
): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': steadfastUserAgent(),
    'x-correlation-id': event.correlationId,
    ...config.headers,
  };
  if (config.secret !== undefined) {
    const timestampSeconds = Math.floor(Date.now() / 1000);
    headers[STANDARD_WEBHOOK_HEADERS.id] = event.eventId;
    headers[STANDARD_WEBHOOK_HEADERS.timestamp] = String(timestampSeconds);
    headers[STANDARD_WEBHOOK_HEADERS.signature] = signStandardWebhook({
      id: event.eventId,
      timestampSeconds,
      body,
      secret: config.secret,
    });
  }
  return headers;
}

/** The first 500 characters of the body; a short body is read to its end, a long one is cut off. */
async function readBodyExcerpt(response: Response): Promise<string> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const kept: Uint8Array[] = [];
  let keptBytes = 0;
  let seenBytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    seenBytes += value.byteLength;
    if (keptBytes < EXCERPT_BYTES) {
      const part = value.subarray(0, EXCERPT_BYTES - keptBytes);
      kept.push(part);
      keptBytes += part.byteLength;
    }
    if (seenBytes > DRAIN_LIMIT_BYTES) {
      await reader.cancel();
      break;
    }
  }
  return excerptOf(new TextDecoder().decode(Buffer.concat(kept)));
}

/** An abort signal for one request: fires after `timeoutMs` or when the attempt's own signal does. */
function requestSignal(
  parent: AbortSignal,
  config: HttpDestinationConfig,
): { readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort(
      new HandlerTimeoutError(`${METHOD} ${config.displayUrl} did not answer within ${config.timeoutMs} ms`),
    );
  }, config.timeoutMs);
  const onAbort = (): void => controller.abort(parent.reason);
  if (parent.aborted) onAbort();
  else parent.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
    },
  };
}

/** What `answerError` judges: the status, the headers and the start of the body. */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly excerpt: string;
}

/**
 * Sends the request and reads the start of the answer. An abort (timeout or the attempt's signal)
 * rejects with the abort's reason; a network failure rejects with fetch's own error, whose
 * `cause.code` (ECONNREFUSED, ...) the retry policy classifies.
 */
async function send(
  config: HttpDestinationConfig,
  init: { readonly body: string; readonly headers: Record<string, string> },
  parent: AbortSignal,
): Promise<HttpAnswer> {
  const request = requestSignal(parent, config);
  try {
    const response = await fetch(config.url, {
      method: METHOD,
      body: init.body,
      headers: init.headers,
      redirect: 'manual',
      signal: request.signal,
    });
    const excerpt = await readBodyExcerpt(response);
    return { status: response.status, headers: response.headers, excerpt };
  } catch (error) {
    throw request.signal.aborted ? (request.signal.reason as unknown) : error;
  } finally {
    request.dispose();
  }
}

/**
 * The error an answer fails with (see `createHttpDestination`), or null when it is a success.
 * `maxRetryAfterMs` default 3600000.
 */
export function answerError(
  answer: HttpAnswer,
  options: {
    readonly displayUrl: string;
    readonly rules?: HttpResponseRules;
    readonly maxRetryAfterMs?: number;
  },
): Error | null {
  const verdict = classifyHttpStatus(answer.status, options.rules);
  if (verdict === 'success') return null;
  const init = {
    method: METHOD,
    url: options.displayUrl,
    status: answer.status,
    bodyExcerpt: answer.excerpt,
  };
  if (verdict === 'permanent') {
    const cause = new HttpStatusError({ ...init, retryable: false });
    return new PermanentError(cause.message, { cause });
  }
  const statusError = new HttpStatusError({ ...init, retryable: true });
  const waitMs = RETRY_AFTER_STATUSES.includes(answer.status)
    ? parseRetryAfter(answer.headers.get('retry-after'))
    : null;
  if (waitMs === null) return statusError;
  const delayMs = Math.min(waitMs, options.maxRetryAfterMs ?? HTTP_DESTINATION_DEFAULTS.maxRetryAfterMs);
  const message = `${statusError.message} (retry after ${delayMs} ms)`;
  return new RetryAfterError(delayMs, message, { cause: statusError });
}

/**
 * A destination handler that POSTs each event as JSON (see `webhookBody`) to `options.url`, with
 * `content-type: application/json`, `x-correlation-id`, `user-agent: steadfast/<version>` and, when
 * `options.secret` is set, Standard Webhooks signature headers. Redirects are not followed.
 *
 * Answers are judged by `classifyHttpStatus` (overridable with `options.rules`): a retryable status
 * throws `HttpStatusError` (`retryable: true`), or `RetryAfterError` when a 429/503 carries
 * `Retry-After`; a permanent one throws `PermanentError` whose message holds the status and the
 * first 500 characters of the body. Network failures are rethrown as fetch raised them, so the
 * retry policy's error codes apply; a request over `timeoutMs` (default 10000) fails with
 * `HandlerTimeoutError`.
 *
 * Options are validated here: a bad value throws `InvalidOptionError` naming it.
 */
export function createHttpDestination(options: HttpDestinationOptions): Handler {
  const config = resolveOptions(options);
  return async (event, ctx) => {
    const body = webhookBody(event);
    const answer = await send(config, { body, headers: requestHeaders(config, event, body) }, ctx.signal);
    const error = answerError(answer, config);
    if (error) throw error;
  };
}
