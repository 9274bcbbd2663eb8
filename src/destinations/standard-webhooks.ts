import { createHmac, timingSafeEqual } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';

/**
 * Standard Webhooks (https://www.standardwebhooks.com) signing and verification, shared by the
 * outbound HTTP destination and HTTP ingest.
 *
 * The signed content is `${id}.${timestamp}.${body}`; the signature is the base64 HMAC-SHA256 of
 * it, sent as `v1,<signature>` in the `webhook-signature` header (several entries, separated by
 * spaces, during secret rotation).
 */

/** The prefix of secrets written in the Standard Webhooks format: `whsec_<base64 key>`. */
export const STANDARD_WEBHOOK_SECRET_PREFIX = 'whsec_';

/** How far (in seconds, either way) a timestamp may be from now by default. */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;

/** Header names of the Standard Webhooks specification. */
export const STANDARD_WEBHOOK_HEADERS = {
  id: 'webhook-id',
  timestamp: 'webhook-timestamp',
  signature: 'webhook-signature',
} as const;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const TIMESTAMP = /^\d{1,15}$/;

/**
 * The HMAC key of a secret. `whsec_<base64>` is decoded from base64 (as the specification says);
 * any other string is used as its UTF-8 bytes. Throws `InvalidOptionError` on an empty secret or a
 * `whsec_` secret whose rest is not base64.
 */
export function decodeWebhookSecret(secret: string): Buffer {
  if (!secret.startsWith(STANDARD_WEBHOOK_SECRET_PREFIX)) {
    if (secret.length === 0) throw new InvalidOptionError('webhook secret must not be empty');
    return Buffer.from(secret, 'utf8');
  }
  const encoded = secret.slice(STANDARD_WEBHOOK_SECRET_PREFIX.length);
  if (!BASE64.test(encoded) || encoded.length % 4 === 1) {
    throw new InvalidOptionError(
      `webhook secret: the part after ${STANDARD_WEBHOOK_SECRET_PREFIX} must be base64`,
    );
  }
  return Buffer.from(encoded, 'base64');
}

function computeSignature(key: Buffer, id: string, timestamp: string, body: string | Uint8Array): string {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64');
}

export interface SignStandardWebhookInput {
  /** The message id (`webhook-id`); stays the same across retries of one message. */
  readonly id: string;
  /** Unix time in whole seconds (`webhook-timestamp`). */
  readonly timestampSeconds: number;
  /** The exact request body that is sent. */
  readonly body: string | Uint8Array;
  /** `whsec_<base64>` or a plain string (its UTF-8 bytes are the key). */
  readonly secret: string;
}

/** Signs one message: returns the `webhook-signature` value, `v1,<base64 HMAC-SHA256>`. */
export function signStandardWebhook(input: SignStandardWebhookInput): string {
  if (!Number.isSafeInteger(input.timestampSeconds) || input.timestampSeconds < 0) {
    throw new RangeError(`timestampSeconds must be a whole number >= 0, got ${input.timestampSeconds}`);
  }
  const key = decodeWebhookSecret(input.secret);
  return `v1,${computeSignature(key, input.id, String(input.timestampSeconds), input.body)}`;
}

export interface VerifyStandardWebhookInput {
  /** The `webhook-id` header. */
  readonly id: string | null | undefined;
  /** The `webhook-timestamp` header (unix seconds). */
  readonly timestamp: string | number | null | undefined;
  /** The `webhook-signature` header: one or more space-separated `v1,<base64>` entries. */
  readonly signatureHeader: string | null | undefined;
  /** The raw request body, exactly as received. */
  readonly body: string | Uint8Array;
  /** Secrets accepted (more than one while rotating); each `whsec_<base64>` or a plain string. */
  readonly secrets: readonly string[];
  /** Now, in unix seconds. default: the system clock */
  readonly nowSeconds?: number;
  /** How far the timestamp may be from now, either way. default 300 */
  readonly toleranceSeconds?: number;
}

/**
 * Why a message was refused:
 * - `missing_signature`: the signature header or the id is absent or blank;
 * - `stale_timestamp`: the timestamp is absent, not a whole number of seconds, or further than
 *   the tolerance from now (in the past or in the future);
 * - `invalid_signature`: no `v1` entry matches any of the secrets.
 */
export type WebhookVerificationFailure = 'missing_signature' | 'invalid_signature' | 'stale_timestamp';

export type VerifyStandardWebhookResult =
  | { readonly ok: true; /** Index in `secrets` of the secret that matched. */ readonly secretIndex: number }
  | { readonly ok: false; readonly reason: WebhookVerificationFailure };

/** The `v1` signatures of a header; other versions and malformed entries are ignored. */
export function parseSignatureHeader(header: string): string[] {
  const signatures: string[] = [];
  for (const entry of header.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma === -1 || entry.slice(0, comma) !== 'v1') continue;
    const signature = entry.slice(comma + 1);
    if (signature.length > 0) signatures.push(signature);
  }
  return signatures;
}

/** The timestamp as signed (the header's exact text) and as a number, or null if malformed. */
function parseTimestamp(
  timestamp: string | number | null | undefined,
): { readonly text: string; readonly seconds: number } | null {
  if (typeof timestamp === 'number') {
    return Number.isSafeInteger(timestamp) && timestamp >= 0
      ? { text: String(timestamp), seconds: timestamp }
      : null;
  }
  if (typeof timestamp !== 'string' || !TIMESTAMP.test(timestamp)) return null;
  return { text: timestamp, seconds: Number(timestamp) };
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** Index of the first secret whose signature is among `candidates`, or -1. */
function matchingSecret(input: VerifyStandardWebhookInput, timestamp: string, candidates: string[]): number {
  for (const [index, secret] of input.secrets.entries()) {
    const expected = computeSignature(decodeWebhookSecret(secret), input.id ?? '', timestamp, input.body);
    if (candidates.some((candidate) => safeEqual(expected, candidate))) return index;
  }
  return -1;
}

/**
 * Verifies a Standard Webhooks message: the headers are present, the timestamp is within
 * `toleranceSeconds` (default 300) of `nowSeconds` (default: now), and one `v1` signature of
 * the header matches one of `secrets` (compared in constant time). Throws `InvalidOptionError`
 * when `secrets` is empty or holds a malformed `whsec_` secret.
 */
export function verifyStandardWebhook(input: VerifyStandardWebhookInput): VerifyStandardWebhookResult {
  if (input.secrets.length === 0) throw new InvalidOptionError('secrets must hold at least one secret');
  if (!input.id || !input.signatureHeader?.trim()) return { ok: false, reason: 'missing_signature' };
  const timestamp = parseTimestamp(input.timestamp);
  const now = input.nowSeconds ?? Math.floor(Date.now() / 1000);
  const tolerance = input.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;
  if (timestamp === null || Math.abs(now - timestamp.seconds) > tolerance) {
    return { ok: false, reason: 'stale_timestamp' };
  }
  const secretIndex = matchingSecret(input, timestamp.text, parseSignatureHeader(input.signatureHeader));
  return secretIndex === -1 ? { ok: false, reason: 'invalid_signature' } : { ok: true, secretIndex };
}
