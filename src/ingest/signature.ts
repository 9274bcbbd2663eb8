import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { verifyStandardWebhook } from '../destinations/standard-webhooks.js';

export type SignatureFailure = 'missing_signature' | 'invalid_signature' | 'stale_timestamp';

export type SignatureCheck =
  | {
      readonly ok: true;
      readonly secretIndex: number;
      readonly scheme: 'hmac' | 'standard-webhooks';
      readonly webhookId?: string;
    }
  | { readonly ok: false; readonly reason: SignatureFailure };

export interface SignatureHeaders {
  readonly 'x-hmac-signature'?: string;
  readonly 'webhook-id'?: string;
  readonly 'webhook-timestamp'?: string;
  readonly 'webhook-signature'?: string;
}

function safeEqualHex(expectedHex: string, givenHex: string): boolean {
  if (!/^[0-9a-f]+$/i.test(givenHex)) return false;
  const expected = Buffer.from(expectedHex, 'hex');
  const given = Buffer.from(givenHex, 'hex');
  return expected.length === given.length && timingSafeEqual(expected, given);
}

const keys = new Map<string, KeyObject>();

/** The secret as a key object, made once per secret rather than on every request. */
function keyOf(secret: string): KeyObject {
  let key = keys.get(secret);
  if (!key) {
    key = createSecretKey(Buffer.from(secret, 'utf8'));
    if (keys.size > 64) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

/** `x-hmac-signature: <hex HMAC-SHA256(secret, rawBody)>`, also `sha256=<hex>`. */
export function verifyHmacSignature(
  header: string,
  body: Buffer,
  secrets: readonly string[],
): SignatureCheck {
  const given = header.trim().replace(/^sha256=/i, '');
  for (const [index, secret] of secrets.entries()) {
    const expected = createHmac('sha256', keyOf(secret)).update(body).digest('hex');
    if (safeEqualHex(expected, given)) return { ok: true, secretIndex: index, scheme: 'hmac' };
  }
  return { ok: false, reason: 'invalid_signature' };
}

/**
 * Checks a request's signature on its raw body. Either scheme is accepted; any of the active
 * secrets may have signed it (rotation). Standard Webhooks timestamps must be within the tolerance.
 */
export function verifyRequestSignature(
  headers: SignatureHeaders,
  body: Buffer,
  secrets: readonly string[],
  options: { nowSeconds: number; toleranceSeconds: number },
): SignatureCheck {
  const hmac = headers['x-hmac-signature'];
  if (hmac) return verifyHmacSignature(hmac, body, secrets);
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signature = headers['webhook-signature'];
  if (!signature || !id || !timestamp) return { ok: false, reason: 'missing_signature' };
  const result = verifyStandardWebhook({
    id,
    timestamp,
    signatureHeader: signature,
    body: body.toString('utf8'),
    secrets,
    nowSeconds: options.nowSeconds,
    toleranceSeconds: options.toleranceSeconds,
  });
  return result.ok
    ? { ok: true, secretIndex: result.secretIndex, scheme: 'standard-webhooks', webhookId: id }
    : { ok: false, reason: result.reason };
}
