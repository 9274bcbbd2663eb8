import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../errors.js';
import {
  decodeWebhookSecret,
  parseSignatureHeader,
  signStandardWebhook,
  verifyStandardWebhook,
} from './standard-webhooks.js';

/** Computed here with node:crypto alone, independently of the module under test. */
function reference(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

const NOW = 1_700_000_000;
const ID = 'msg_2fQ0cX7';
const BODY = '{"eventId":"e-1","payload":{"amount":4200}}';

function newSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

describe('signStandardWebhook', () => {
  it('matches an HMAC-SHA256 computed independently over id.timestamp.body with the decoded whsec key', () => {
    const keyBytes = randomBytes(32);
    const secret = `whsec_${keyBytes.toString('base64')}`;
    expect(signStandardWebhook({ id: ID, timestampSeconds: NOW, body: BODY, secret })).toBe(
      reference(keyBytes, ID, NOW, BODY),
    );
  });

  it("reproduces the Standard Webhooks specification's published test vector", () => {
    const vector = {
      id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      timestampSeconds: 1614265330,
      body: '{"test": 2432232314}',
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    };
    const independent = reference(
      Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64'),
      vector.id,
      vector.timestampSeconds,
      vector.body,
    );
    expect(independent).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    expect(signStandardWebhook(vector)).toBe(independent);
  });

  it('uses the UTF-8 bytes of a secret without the whsec_ prefix', () => {
    const secret = 'plain secret with ünïcode';
    expect(signStandardWebhook({ id: ID, timestampSeconds: NOW, body: BODY, secret })).toBe(
      reference(Buffer.from(secret, 'utf8'), ID, NOW, BODY),
    );
  });

  it('signs a byte body exactly like the same text', () => {
    const secret = newSecret();
    const asText = signStandardWebhook({ id: ID, timestampSeconds: NOW, body: BODY, secret });
    const asBytes = signStandardWebhook({ id: ID, timestampSeconds: NOW, body: Buffer.from(BODY), secret });
    expect(asBytes).toBe(asText);
  });

  it('refuses an empty secret, a whsec_ secret that is not base64, and a fractional timestamp', () => {
    const input = { id: ID, timestampSeconds: NOW, body: BODY };
    expect(() => signStandardWebhook({ ...input, secret: '' })).toThrow(InvalidOptionError);
    expect(() => signStandardWebhook({ ...input, secret: 'whsec_' })).toThrow(InvalidOptionError);
    expect(() => signStandardWebhook({ ...input, secret: 'whsec_not base64!' })).toThrow(InvalidOptionError);
    expect(() => signStandardWebhook({ ...input, secret: 'k', timestampSeconds: 1.5 })).toThrow(RangeError);
  });

  it('decodes whsec_ secrets with or without base64 padding', () => {
    const key = Buffer.from('0123456789abcdef01234');
    const exact = key.toString('base64');
    expect(exact.endsWith('=')).toBe(false);
    const withPadding = Buffer.from('0123456789abcdef0123').toString('base64');
    expect(withPadding.endsWith('=')).toBe(true);
    expect(decodeWebhookSecret(`whsec_${exact}`)).toEqual(key);
    expect(decodeWebhookSecret(`whsec_${withPadding.replace(/=+$/, '')}`)).toEqual(
      Buffer.from('0123456789abcdef0123'),
    );
  });
});

describe('verifyStandardWebhook', () => {
  const secret = newSecret();
  const signed = (timestampSeconds = NOW, key = secret, body = BODY): string =>
    signStandardWebhook({ id: ID, timestampSeconds, body, secret: key });
  const base = { id: ID, timestamp: String(NOW), body: BODY, secrets: [secret], nowSeconds: NOW };

  it('accepts a correctly signed message', () => {
    expect(verifyStandardWebhook({ ...base, signatureHeader: signed() })).toEqual({
      ok: true,
      secretIndex: 0,
    });
  });

  it('accepts the raw body as bytes', () => {
    const result = verifyStandardWebhook({ ...base, body: Buffer.from(BODY), signatureHeader: signed() });
    expect(result).toEqual({ ok: true, secretIndex: 0 });
  });

  it('uses the system clock when nowSeconds is not given', () => {
    const now = Math.floor(Date.now() / 1000);
    const result = verifyStandardWebhook({
      id: ID,
      timestamp: now,
      body: BODY,
      secrets: [secret],
      signatureHeader: signed(now),
    });
    expect(result.ok).toBe(true);
  });

  describe('rotation', () => {
    const oldSecret = newSecret();
    const newer = newSecret();

    it('accepts a header with several entries when one matches, and names the secret that matched', () => {
      const header = `${signed(NOW, oldSecret)} ${signed(NOW, newer)}`;
      expect(verifyStandardWebhook({ ...base, secrets: [newer], signatureHeader: header })).toEqual({
        ok: true,
        secretIndex: 0,
      });
      expect(verifyStandardWebhook({ ...base, secrets: [oldSecret], signatureHeader: header })).toEqual({
        ok: true,
        secretIndex: 0,
      });
    });

    it('accepts a message signed with any of several secrets', () => {
      const result = verifyStandardWebhook({
        ...base,
        secrets: [newer, oldSecret],
        signatureHeader: signed(NOW, oldSecret),
      });
      expect(result).toEqual({ ok: true, secretIndex: 1 });
    });

    it('refuses a message signed only with a secret that is no longer accepted', () => {
      const result = verifyStandardWebhook({
        ...base,
        secrets: [newer],
        signatureHeader: signed(NOW, oldSecret),
      });
      expect(result).toEqual({ ok: false, reason: 'invalid_signature' });
    });
  });

  describe('timestamps', () => {
    it('refuses a timestamp older than the tolerance', () => {
      const timestamp = NOW - 301;
      const result = verifyStandardWebhook({
        ...base,
        timestamp: String(timestamp),
        signatureHeader: signed(timestamp),
      });
      expect(result).toEqual({ ok: false, reason: 'stale_timestamp' });
    });

    it('refuses a timestamp further in the future than the tolerance', () => {
      const timestamp = NOW + 301;
      const result = verifyStandardWebhook({
        ...base,
        timestamp: String(timestamp),
        signatureHeader: signed(timestamp),
      });
      expect(result).toEqual({ ok: false, reason: 'stale_timestamp' });
    });

    it('accepts timestamps exactly at the tolerance, either way', () => {
      for (const timestamp of [NOW - 300, NOW + 300]) {
        const result = verifyStandardWebhook({
          ...base,
          timestamp: String(timestamp),
          signatureHeader: signed(timestamp),
        });
        expect(result).toEqual({ ok: true, secretIndex: 0 });
      }
    });

    it('honours a custom tolerance', () => {
      const timestamp = NOW - 20;
      const input = { ...base, timestamp: String(timestamp), signatureHeader: signed(timestamp) };
      expect(verifyStandardWebhook({ ...input, toleranceSeconds: 10 })).toEqual({
        ok: false,
        reason: 'stale_timestamp',
      });
      expect(verifyStandardWebhook({ ...input, toleranceSeconds: 30 }).ok).toBe(true);
    });

    it('refuses a timestamp that is missing or not a whole number of seconds', () => {
      for (const timestamp of [
        undefined,
        null,
        '',
        'soon',
        '1700000000.5',
        '-1700000000',
        ' 1700000000',
        1.5,
      ]) {
        const result = verifyStandardWebhook({ ...base, timestamp, signatureHeader: signed() });
        expect(result, String(timestamp)).toEqual({ ok: false, reason: 'stale_timestamp' });
      }
    });

    it('refuses a signature made for another timestamp', () => {
      const result = verifyStandardWebhook({ ...base, signatureHeader: signed(NOW - 1) });
      expect(result).toEqual({ ok: false, reason: 'invalid_signature' });
    });
  });

  describe('malformed and tampered messages', () => {
    it('reports a missing or blank signature header, or a missing id', () => {
      for (const signatureHeader of [undefined, null, '', '   ']) {
        expect(verifyStandardWebhook({ ...base, signatureHeader })).toEqual({
          ok: false,
          reason: 'missing_signature',
        });
      }
      expect(verifyStandardWebhook({ ...base, id: undefined, signatureHeader: signed() })).toEqual({
        ok: false,
        reason: 'missing_signature',
      });
    });

    it('refuses headers without a usable v1 entry', () => {
      const signature = signed().slice('v1,'.length);
      const headers = [
        'garbage',
        signature,
        'v1,',
        `v2,${signature}`,
        `v1a,${signature}`,
        `V1,${signature}`,
        'v1,short',
        `v1,${signature}x`,
        `v1,${signature.slice(0, -2)}`,
        `v1;${signature}`,
      ];
      for (const signatureHeader of headers) {
        expect(verifyStandardWebhook({ ...base, signatureHeader }), signatureHeader).toEqual({
          ok: false,
          reason: 'invalid_signature',
        });
      }
    });

    it('finds the v1 entry among malformed ones and extra spaces', () => {
      const header = `garbage  v2,abc ${signed()}  v1,`;
      expect(verifyStandardWebhook({ ...base, signatureHeader: header })).toEqual({
        ok: true,
        secretIndex: 0,
      });
    });

    it('refuses a tampered body or id', () => {
      const signatureHeader = signed();
      expect(verifyStandardWebhook({ ...base, body: `${BODY} `, signatureHeader })).toEqual({
        ok: false,
        reason: 'invalid_signature',
      });
      expect(verifyStandardWebhook({ ...base, id: 'msg_other', signatureHeader })).toEqual({
        ok: false,
        reason: 'invalid_signature',
      });
    });

    it('throws when no secret is given or a secret is malformed', () => {
      expect(() => verifyStandardWebhook({ ...base, secrets: [], signatureHeader: signed() })).toThrow(
        InvalidOptionError,
      );
      expect(() =>
        verifyStandardWebhook({ ...base, secrets: ['whsec_%%%'], signatureHeader: signed() }),
      ).toThrow(InvalidOptionError);
    });
  });

  it('parses the v1 entries of a header', () => {
    expect(parseSignatureHeader('v1,abc v2,def  v1,ghi=  nonsense v1,')).toEqual(['abc', 'ghi=']);
  });
});
