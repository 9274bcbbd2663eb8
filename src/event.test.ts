import { describe, expect, it } from 'vitest';
import { ValidationError } from './errors.js';
import { toEnvelope, typeMatches } from './event.js';

const now = Date.UTC(2026, 10, 23, 12);

describe('toEnvelope', () => {
  it('fills in a UUIDv7 id, the time and the correlation id', () => {
    const a = toEnvelope({ type: 't', payload: { x: 1 } }, { now });
    const b = toEnvelope({ type: 't', payload: { x: 1 } }, { now });
    expect(a.eventId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.eventId < b.eventId).toBe(true);
    expect(a).toMatchObject({
      type: 't',
      key: null,
      payloadJson: '{"x":1}',
      occurredAt: '2026-11-23T12:00:00.000Z',
      correlationId: a.eventId,
      metadataJson: '{}',
    });
  });

  it('keeps what the producer gave', () => {
    const e = toEnvelope(
      {
        eventId: 'e-1',
        type: 'order.paid',
        payload: [1, 'two', null],
        key: 'order-9',
        occurredAt: '2026-01-02T03:04:05+02:00',
        correlationId: 'req-1',
        source: 'billing',
        metadata: { tenant: 'acme' },
      },
      { now },
    );
    expect(e).toMatchObject({ eventId: 'e-1', key: 'order-9', correlationId: 'req-1', source: 'billing' });
    expect(JSON.parse(e.metadataJson)).toEqual({ tenant: 'acme' });
  });

  it('names the offending field', () => {
    const field = (input: unknown, options = {}) => {
      try {
        toEnvelope(input, { now, ...options });
      } catch (error) {
        expect(error).toBeInstanceOf(ValidationError);
        return (error as ValidationError).field;
      }
      throw new Error('expected a ValidationError');
    };
    expect(field({ payload: {} })).toBe('type');
    expect(field({ type: 't', payload: 1, key: '' })).toBe('key');
    expect(field({ type: 't', payload: 1, metadata: { n: Number.NaN } })).toBe('metadata.n');
    expect(field({ type: 't', payload: 'x'.repeat(100) }, { maxPayloadBytes: 50 })).toBe('payload');
    expect(field('not an object')).toBe('(event)');
  });
});

describe('typeMatches', () => {
  it('matches exact names, prefix patterns and *', () => {
    expect(typeMatches('*', 'anything')).toBe(true);
    expect(typeMatches(['a', 'b'], 'b')).toBe(true);
    expect(typeMatches(['order.*'], 'order.paid')).toBe(true);
    expect(typeMatches(['order.*'], 'orders')).toBe(false);
    expect(typeMatches(['a'], 'ab')).toBe(false);
  });
});
