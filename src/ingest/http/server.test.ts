import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/support/temp-dir.js';
import { waitFor } from '../../../test/support/wait-for.js';
import { createProcessor, type ReliableEventProcessor } from '../../core/processor.js';
import { signStandardWebhook } from '../../destinations/standard-webhooks.js';
import { PermanentError } from '../../errors.js';
import { buildServer, type IngestSettings } from './server.js';

const SECRETS = ['first-secret', 'second-secret'];
const ADMIN = 'admin-token-123';
const NOW = 1_800_000_000;

const settings = (over: Partial<IngestSettings> = {}): IngestSettings => ({
  hmacSecrets: SECRETS,
  adminToken: ADMIN,
  signatureRequired: true,
  signatureToleranceSeconds: 300,
  maxBodyBytes: 1024 * 1024,
  maxBatchEvents: 1000,
  rateLimit: { perIp: { ratePerSec: 0, burst: 0 }, perSecret: { ratePerSec: 0, burst: 0 } },
  ...over,
});

const hmac = (body: string, secret = SECRETS[0]!) => createHmac('sha256', secret).update(body).digest('hex');

describe('HTTP API', () => {
  let dir: ReturnType<typeof tempDir>;
  let processor: ReliableEventProcessor;
  let app: FastifyInstance;
  let lifecycle: { ready: boolean; shuttingDown: boolean };

  async function setup(over: Partial<IngestSettings> = {}) {
    const built = buildServer({
      processor,
      settings: settings(over),
      logger: pino({ enabled: false }),
      metrics: processor.prometheus,
      nowSeconds: () => NOW,
    });
    app = built.app;
    lifecycle = built.lifecycle;
    lifecycle.ready = true;
    await app.ready();
  }

  beforeEach(async () => {
    dir = tempDir('steadfast-http-');
    processor = createProcessor({ storage: { kind: 'sqlite', path: join(dir.path, 's.db') }, logger: false });
    processor.destination('sink', { types: ['ok.*'] }, async () => undefined);
    processor.destination('broken', { types: ['broken'] }, async () => {
      throw new PermanentError('refused');
    });
    await processor.start();
    await setup();
  });

  afterEach(async () => {
    await app.close();
    await processor.stop();
    dir.remove();
  });

  const post = (body: string, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url: '/events',
      payload: body,
      headers: { 'content-type': 'application/json', 'x-hmac-signature': hmac(body), ...headers },
    });

  async function storedEvents(): Promise<number> {
    return (await processor.getMetrics()).totalEvents;
  }

  it('accepts a signed event with 202 after the durable write, echoing the correlation id', async () => {
    const body = JSON.stringify({ eventId: 'e-1', type: 'ok.created', payload: { n: 1 } });
    const res = await post(body, { 'x-correlation-id': 'req-42' });
    expect(res.statusCode).toBe(202);
    expect(res.headers['x-correlation-id']).toBe('req-42');
    expect(res.json()).toMatchObject({
      accepted: true,
      eventId: 'e-1',
      correlationId: 'req-42',
      duplicate: false,
    });
    expect(typeof res.json().latencyMs).toBe('number');
    expect((await processor.getEvent('e-1'))?.event.correlationId).toBe('req-42');

    const again = await post(body);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ duplicate: true, eventId: 'e-1' });
    const generated = await post(JSON.stringify({ type: 'ok.x', payload: 1 }));
    expect(generated.headers['x-correlation-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers a batch with per-event results, all or nothing', async () => {
    await post(JSON.stringify({ eventId: 'dup', type: 'ok.a', payload: 1 }));
    const body = JSON.stringify({
      events: [
        { eventId: 'b1', type: 'ok.a', payload: 1 },
        { eventId: 'dup', type: 'ok.a', payload: 1 },
      ],
    });
    const res = await post(body);
    expect(res.statusCode).toBe(202);
    expect(res.json()).toMatchObject({
      count: 2,
      duplicates: 1,
      results: [
        { eventId: 'b1', duplicate: false },
        { eventId: 'dup', duplicate: true },
      ],
    });
    const before = await storedEvents();
    const bad = JSON.stringify({ events: [{ eventId: 'b2', type: 'ok.a', payload: 1 }, { type: '' }] });
    const rejected = await post(bad);
    expect(rejected.statusCode).toBe(400);
    expect(rejected.json().error).toMatchObject({
      code: 'invalid_event',
      details: { index: 1, field: 'type' },
    });
    expect(await processor.getEvent('b2')).toBeNull();
    expect(await storedEvents()).toBe(before);
    const tooMany = JSON.stringify({
      events: Array.from({ length: 1001 }, () => ({ type: 'ok.a', payload: 1 })),
    });
    expect((await post(tooMany)).statusCode).toBe(400);
  });

  it('accepts either signature scheme and every active secret; rejects the rest with 401 and stores nothing', async () => {
    const body = JSON.stringify({ type: 'ok.sig', payload: {} });
    expect((await post(body, { 'x-hmac-signature': `sha256=${hmac(body)}` })).statusCode).toBe(202);
    expect((await post(body, { 'x-hmac-signature': hmac(body, SECRETS[1]) })).statusCode).toBe(202);
    const before = await storedEvents();

    const codeOf = async (headers: Record<string, string>, payload = body) => {
      const res = await app.inject({
        method: 'POST',
        url: '/events',
        payload,
        headers: { 'content-type': 'application/json', ...headers },
      });
      return [res.statusCode, res.json().error?.code];
    };
    expect(await codeOf({})).toEqual([401, 'missing_signature']);
    expect(await codeOf({ 'x-hmac-signature': hmac(body, 'retired-secret') })).toEqual([
      401,
      'invalid_signature',
    ]);
    expect(await codeOf({ 'x-hmac-signature': 'zz-not-hex' })).toEqual([401, 'invalid_signature']);
    expect(await codeOf({ 'x-hmac-signature': hmac(`${body} `) })).toEqual([401, 'invalid_signature']);

    const sw = (id: string, ts: number, secret = SECRETS[1]!, payload = body) => ({
      'webhook-id': id,
      'webhook-timestamp': String(ts),
      'webhook-signature': signStandardWebhook({ id, timestampSeconds: ts, body: payload, secret }),
    });
    expect(await codeOf(sw('wh-1', NOW - 301))).toEqual([401, 'stale_timestamp']);
    expect(await codeOf(sw('wh-1', NOW + 301))).toEqual([401, 'stale_timestamp']);
    expect(await codeOf(sw('wh-1', NOW, 'other'))).toEqual([401, 'invalid_signature']);
    expect(await storedEvents()).toBe(before);

    // The webhook-id is the event id, so a replayed delivery is a duplicate, not a second event.
    expect(await codeOf(sw('wh-1', NOW - 299))).toEqual([202, undefined]);
    expect(await codeOf(sw('wh-1', NOW))).toEqual([200, undefined]);
    expect((await processor.getEvent('wh-1'))?.event.type).toBe('ok.sig');
  });

  it('maps bad input to 400, 413 and 415 with stable codes, storing nothing', async () => {
    await app.close();
    await setup({ maxBodyBytes: 2048 });
    const cases: [string, Record<string, string>, number, string][] = [
      ['{"type": "ok.a", ', {}, 400, 'invalid_json'],
      [JSON.stringify({ type: 'ok.a' }), {}, 400, 'invalid_event'],
      [JSON.stringify([1, 2]), {}, 400, 'invalid_event'],
      [JSON.stringify({ type: 'ok.a', payload: 'x'.repeat(4000) }), {}, 413, 'payload_too_large'],
      ['type=ok.a', { 'content-type': 'application/x-www-form-urlencoded' }, 415, 'unsupported_media_type'],
    ];
    for (const [body, headers, status, code] of cases) {
      const res = await post(body, headers);
      expect([res.statusCode, res.json().error.code]).toEqual([status, code]);
    }
    const missingField = await post(JSON.stringify({ type: 'ok.a' }));
    expect(missingField.json().error.details.field).toBe('payload');
    expect(await storedEvents()).toBe(0);
  });

  it('limits per IP and per secret with 429 and Retry-After', async () => {
    await app.close();
    await setup({
      rateLimit: { perIp: { ratePerSec: 1, burst: 2 }, perSecret: { ratePerSec: 0, burst: 0 } },
    });
    const body = JSON.stringify({ type: 'ok.a', payload: 1 });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await post(body)).statusCode);
    expect(statuses).toEqual([202, 202, 429]);
    const limited = await post(body);
    expect(limited.headers['retry-after']).toBe('1');
    expect(limited.json().error.code).toBe('rate_limited');

    await app.close();
    await setup({
      rateLimit: { perIp: { ratePerSec: 0, burst: 0 }, perSecret: { ratePerSec: 1, burst: 1 } },
    });
    expect((await post(JSON.stringify({ type: 'ok.b', payload: 1 }))).statusCode).toBe(202);
    const other = JSON.stringify({ type: 'ok.c', payload: 1 });
    expect((await post(other)).statusCode).toBe(429);
    expect((await post(other, { 'x-hmac-signature': hmac(other, SECRETS[1]) })).statusCode).toBe(202);
  });

  it('answers 503 not_ready to ingest until the store is open', async () => {
    lifecycle.ready = false;
    const res = await post(JSON.stringify({ eventId: 'early', type: 't', payload: {} }));
    expect([res.statusCode, res.json().error.code]).toEqual([503, 'not_ready']);
    expect(await processor.getEvent('early')).toBeNull();
  });

  it('answers 503 shutting_down and not ready while stopping', async () => {
    expect((await app.inject({ url: '/ready' })).statusCode).toBe(200);
    lifecycle.shuttingDown = true;
    const res = await post(JSON.stringify({ type: 'ok.a', payload: 1 }));
    expect([res.statusCode, res.json().error.code]).toEqual([503, 'shutting_down']);
    expect((await app.inject({ url: '/ready' })).statusCode).toBe(503);
    expect(await storedEvents()).toBe(0);
  });

  it('shows an event, its deliveries and the stats; 404 for an unknown id', async () => {
    await post(JSON.stringify({ eventId: 'seen', type: 'ok.a', payload: { a: 1 } }));
    await waitFor(async () => (await processor.getEvent('seen'))?.deliveries[0]?.state === 'succeeded');
    const res = await app.inject({ url: '/events/seen' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      event: { eventId: 'seen', payload: { a: 1 } },
      deliveries: [{ destination: 'sink', state: 'succeeded', attempts: 1 }],
    });
    const missing = await app.inject({ url: '/events/nope' });
    expect([missing.statusCode, missing.json().error.code]).toEqual([404, 'not_found']);

    const stats = (await app.inject({ url: '/events/stats' })).json();
    expect(stats).toMatchObject({
      queueDepth: 0,
      deadLetters: { count: 0 },
      destinations: { sink: { succeeded: 1 } },
    });
    const health = (await app.inject({ url: '/health' })).json();
    expect(health).toMatchObject({ status: 'healthy', components: { backend: { status: 'healthy' } } });
    const metrics = await app.inject({ url: '/metrics' });
    expect(metrics.body).toContain('steadfast_events_ingested_total{type="ok.a",duplicate="false"} 1');
    expect(metrics.body).toContain('steadfast_deliveries_total{destination="sink",outcome="succeeded"} 1');
  });

  it('guards dead-letter operations with the admin token: 401 without, 403 wrong, then list/replay/delete', async () => {
    await post(
      JSON.stringify({
        events: [1, 2, 3].map((n) => ({ eventId: `d${n}`, type: 'broken', payload: { n } })),
      }),
    );
    await waitFor(async () => (await processor.deadLetters.stats()).count === 3);
    const admin = { authorization: `Bearer ${ADMIN}` };

    const noToken = await app.inject({ url: '/events/failed' });
    expect([noToken.statusCode, noToken.json().error.code]).toEqual([401, 'unauthorized']);
    const wrong = await app.inject({ url: '/events/failed', headers: { authorization: 'Bearer nope' } });
    expect([wrong.statusCode, wrong.json().error.code]).toEqual([403, 'forbidden']);
    const replayNoToken = await app.inject({
      method: 'POST',
      url: '/events/dlq/replay',
      payload: { filter: {} },
    });
    expect(replayNoToken.statusCode).toBe(401);

    const page = await app.inject({ url: '/events/failed?destination=broken&limit=2', headers: admin });
    expect(page.statusCode).toBe(200);
    expect(page.json().items).toHaveLength(2);
    expect(page.json().nextCursor).not.toBeNull();
    const [first] = page.json().items as { id: string }[];
    const one = await app.inject({ url: `/events/failed/${first!.id}`, headers: admin });
    expect([one.statusCode, one.json().id, one.json().destination]).toEqual([200, first!.id, 'broken']);
    const missing = await app.inject({ url: '/events/failed/999999', headers: admin });
    expect([missing.statusCode, missing.json().error.code]).toEqual([404, 'not_found']);
    expect((await app.inject({ url: `/events/failed/${first!.id}` })).statusCode).toBe(401);

    const replay = await app.inject({
      method: 'POST',
      url: '/events/dlq/replay',
      headers: admin,
      payload: { ids: [first!.id] },
    });
    expect(replay.json()).toMatchObject({ replayed: 1 });
    const del = await app.inject({
      method: 'DELETE',
      url: '/events/dlq',
      headers: admin,
      payload: { filter: { type: 'broken' } },
    });
    expect(del.statusCode).toBe(200);
    expect(del.json().deleted).toBeGreaterThanOrEqual(2);
    const bad = await app.inject({
      method: 'POST',
      url: '/events/dlq/replay',
      headers: admin,
      payload: { what: 1 },
    });
    expect([bad.statusCode, bad.json().error.code]).toEqual([400, 'invalid_request']);
  });

  it('serves real HTTP on a port', async () => {
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const body = JSON.stringify({ eventId: 'over-tcp', type: 'ok.tcp', payload: {} });
    const res = await fetch(`http://127.0.0.1:${port}/events`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json; charset=utf-8', 'x-hmac-signature': hmac(body) },
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { eventId: string }).eventId).toBe('over-tcp');
  });
});
