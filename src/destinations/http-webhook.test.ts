import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { waitFor } from '../../test/support/wait-for.js';
import type { DeliveryRecord } from '../backends/backend.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import type { DestinationOptions } from '../core/destination.js';
import { InvalidOptionError } from '../errors.js';
import { answerError, classifyHttpStatus, createHttpDestination, parseRetryAfter } from './http-webhook.js';
import { HttpStatusError } from './http-errors.js';
import { verifyStandardWebhook } from './standard-webhooks.js';

/** One request as the receiver saw it. */
interface ReceivedRequest {
  /** Date.now() when the request's headers arrived. */
  readonly at: number;
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** Answers the n-th request (0-based); may leave `res` unanswered to simulate a hung receiver. */
type Responder = (request: ReceivedRequest, index: number, res: ServerResponse) => void;

interface Receiver {
  readonly url: string;
  readonly requests: ReceivedRequest[];
  close(): Promise<void>;
}

const servers: Server[] = [];

function listen(server: Server): Promise<number> {
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A real HTTP server on 127.0.0.1 that records every request and lets `respond` answer it. */
async function startReceiver(respond: Responder): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const server = createServer((req, res) => {
    const at = Date.now();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: ReceivedRequest = {
        at,
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(request);
      respond(request, requests.length - 1, res);
    });
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}/hook`, requests, close: () => closeServer(server) };
}

/** Answers `statuses[i]` to the i-th request (the last one from then on), with `body`. */
function answerWith(statuses: readonly number[], body = '', headers: Record<string, string> = {}): Responder {
  return (_request, index, res) => {
    const status = statuses[Math.min(index, statuses.length - 1)] ?? 200;
    res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(body);
  };
}

const FAST_RETRY: DestinationOptions = { retry: { baseDelayMs: 10, jitter: false } };

describe('createHttpDestination through the processor', () => {
  let processor: ReliableEventProcessor | null = null;
  let dir: ReturnType<typeof tempDir> | null = null;

  afterEach(async () => {
    await processor?.stop({ timeoutMs: 2000 });
    processor = null;
    await Promise.all(servers.splice(0).map(closeServer));
    dir?.remove();
    dir = null;
  });

  async function startProcessor(
    handler: ReturnType<typeof createHttpDestination>,
    options: DestinationOptions = FAST_RETRY,
  ): Promise<ReliableEventProcessor> {
    dir = tempDir('steadfast-http-');
    const p = createProcessor({
      storage: { kind: 'sqlite', path: join(dir.path, 'store.db') },
      logger: false,
    });
    processor = p;
    p.destination('hook', options, handler);
    await p.start();
    return p;
  }

  async function hookDelivery(
    p: ReliableEventProcessor,
    eventId: string,
  ): Promise<DeliveryRecord | undefined> {
    const record = await p.getEvent(eventId);
    return record?.deliveries.find((d) => d.destination === 'hook');
  }

  async function waitForState(
    p: ReliableEventProcessor,
    eventId: string,
    state: string,
  ): Promise<DeliveryRecord> {
    await waitFor(async () => (await hookDelivery(p, eventId))?.state === state, {
      timeoutMs: 15_000,
      message: `delivery of ${eventId} to be ${state}`,
    });
    const delivery = await hookDelivery(p, eventId);
    if (!delivery) throw new Error(`no delivery of ${eventId}`);
    return delivery;
  }

  it('retries 503 twice, then delivers once on 200, recording all three attempts', async () => {
    const receiver = await startReceiver(answerWith([503, 503, 200], 'busy'));
    const p = await startProcessor(createHttpDestination({ url: receiver.url }));
    const { eventId } = await p.addEvent({ type: 'order.placed', payload: { orderId: 1 } });

    const delivery = await waitForState(p, eventId, 'succeeded');

    expect(receiver.requests).toHaveLength(3);
    expect(
      receiver.requests.map((r) => JSON.parse(r.body) as { eventId: string }).map((b) => b.eventId),
    ).toEqual([eventId, eventId, eventId]);
    expect(delivery.history.map((a) => a.outcome)).toEqual(['failed', 'failed', 'succeeded']);
    for (const attempt of delivery.history.slice(0, 2)) {
      expect(attempt.error?.name).toBe('HttpStatusError');
      expect(attempt.error?.code).toBe('http_status');
      expect(attempt.error?.message).toBe(`POST ${receiver.url} answered 503: busy`);
    }
    expect(delivery.history[2]?.error).toBeNull();
  });

  it('dead-letters a 410 after one attempt, keeping the status and a 500-character body excerpt', async () => {
    const body = `this hook was removed; ${'x'.repeat(2000)}`;
    const receiver = await startReceiver(answerWith([410], body));
    const p = await startProcessor(createHttpDestination({ url: receiver.url }));
    const { eventId } = await p.addEvent({ type: 'order.placed', payload: {} });

    await waitForState(p, eventId, 'dead');
    const { items } = await p.deadLetters.list({ destination: 'hook' });
    expect(items).toHaveLength(1);
    const dead = await p.deadLetters.get(items[0]!.id);

    expect(receiver.requests).toHaveLength(1);
    expect(dead?.attempts).toBe(1);
    expect(dead?.error.name).toBe('PermanentError');
    expect(dead?.error.message).toBe(`POST ${receiver.url} answered 410: ${body.slice(0, 500)}`);
    expect(dead?.error.message).toContain('410');
    expect(dead?.error.message).toContain('this hook was removed');
  });

  it('waits for Retry-After (1 s) after a 429 before the next request', async () => {
    const receiver = await startReceiver((_request, index, res) => {
      if (index === 0) res.writeHead(429, { 'retry-after': '1' }).end('slow down');
      else res.writeHead(200).end();
    });
    const p = await startProcessor(createHttpDestination({ url: receiver.url }));
    const { eventId } = await p.addEvent({ type: 'order.placed', payload: {} });

    const delivery = await waitForState(p, eventId, 'succeeded');

    expect(receiver.requests).toHaveLength(2);
    const [first, second] = receiver.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1000);
    expect(delivery.history[0]?.error?.name).toBe('RetryAfterError');
    expect(delivery.history[0]?.error?.message).toContain('429');
  });

  it('signs requests so the receiver can verify them with verifyStandardWebhook', async () => {
    const secret = `whsec_${Buffer.from('a-32-byte-signing-key-for-tests!').toString('base64')}`;
    const verdicts: unknown[] = [];
    const receiver = await startReceiver((request, _index, res) => {
      const verdict = verifyStandardWebhook({
        id: request.headers['webhook-id'] as string | undefined,
        timestamp: request.headers['webhook-timestamp'] as string | undefined,
        signatureHeader: request.headers['webhook-signature'] as string | undefined,
        body: request.body,
        secrets: [secret],
      });
      verdicts.push(verdict);
      res.writeHead(verdict.ok ? 204 : 401).end();
    });
    const p = await startProcessor(
      createHttpDestination({ url: receiver.url, secret, headers: { Authorization: 'Bearer t0ken' } }),
    );
    const { eventId } = await p.addEvent({
      type: 'order.placed',
      key: 'order-7',
      payload: { orderId: 7 },
      correlationId: 'corr-7',
      source: 'shop',
      metadata: { tenant: 'acme' },
    });

    await waitForState(p, eventId, 'succeeded');

    expect(verdicts).toEqual([{ ok: true, secretIndex: 0 }]);
    const [request] = receiver.requests;
    expect(request?.method).toBe('POST');
    expect(request?.headers['webhook-id']).toBe(eventId);
    expect(Math.abs(Number(request?.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['user-agent']).toMatch(/^steadfast\/\d+\.\d+\.\d+/);
    expect(request?.headers['x-correlation-id']).toBe('corr-7');
    expect(request?.headers.authorization).toBe('Bearer t0ken');
    const event = (await p.getEvent(eventId))!.event;
    expect(JSON.parse(request!.body)).toEqual({
      eventId,
      type: 'order.placed',
      payload: { orderId: 7 },
      key: 'order-7',
      occurredAt: event.occurredAt,
      receivedAt: event.receivedAt,
      correlationId: 'corr-7',
      source: 'shop',
      metadata: { tenant: 'acme' },
    });
  });

  it('sends no signature headers without a secret', async () => {
    const receiver = await startReceiver(answerWith([200]));
    const p = await startProcessor(createHttpDestination({ url: receiver.url }));
    const { eventId } = await p.addEvent({ type: 't', payload: null });

    await waitForState(p, eventId, 'succeeded');

    expect(receiver.requests[0]?.headers['webhook-signature']).toBeUndefined();
    expect(receiver.requests[0]?.headers['x-correlation-id']).toBe(eventId);
  });

  it('aborts a request that gets no answer within timeoutMs and retries it', async () => {
    const receiver = await startReceiver((_request, index, res) => {
      if (index > 0) res.writeHead(200).end(); // the first request is never answered
    });
    const p = await startProcessor(createHttpDestination({ url: receiver.url, timeoutMs: 100 }));
    const { eventId } = await p.addEvent({ type: 't', payload: {} });

    const delivery = await waitForState(p, eventId, 'succeeded');

    expect(receiver.requests).toHaveLength(2);
    expect(delivery.history.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(delivery.history[0]?.error?.name).toBe('HandlerTimeoutError');
    expect(delivery.history[0]?.error?.message).toBe(`POST ${receiver.url} did not answer within 100 ms`);
  });

  it('retries when the connection is refused', async () => {
    const closed = createServer();
    const port = await listen(closed);
    await closeServer(closed);
    const p = await startProcessor(createHttpDestination({ url: `http://127.0.0.1:${port}/hook` }), {
      retry: { baseDelayMs: 10, jitter: false, maxAttempts: 3 },
    });
    const { eventId } = await p.addEvent({ type: 't', payload: {} });

    const delivery = await waitForState(p, eventId, 'dead');

    expect(delivery.history.map((a) => a.outcome)).toEqual(['failed', 'failed', 'failed']);
    const dead = (await p.deadLetters.list({ destination: 'hook' })).items[0];
    expect(dead?.attempts).toBe(3);
  });

  it('lets rules turn a 404 into a retry and a 500 into a permanent failure', async () => {
    const receiver = await startReceiver(answerWith([404, 500], 'nope'));
    const p = await startProcessor(
      createHttpDestination({ url: receiver.url, rules: { retryStatuses: [404], permanentStatuses: [500] } }),
    );
    const { eventId } = await p.addEvent({ type: 't', payload: {} });

    const delivery = await waitForState(p, eventId, 'dead');

    expect(receiver.requests).toHaveLength(2);
    expect(delivery.history.map((a) => a.error?.name)).toEqual(['HttpStatusError', 'PermanentError']);
  });
});

describe('classifyHttpStatus', () => {
  it('applies the default rules', () => {
    const verdicts = Object.fromEntries(
      [200, 201, 204, 299, 301, 408, 425, 429, 500, 503, 599, 400, 401, 404, 409, 410, 422].map((s) => [
        s,
        classifyHttpStatus(s),
      ]),
    );
    expect(verdicts).toEqual({
      200: 'success',
      201: 'success',
      204: 'success',
      299: 'success',
      301: 'retry',
      408: 'retry',
      425: 'retry',
      429: 'retry',
      500: 'retry',
      503: 'retry',
      599: 'retry',
      400: 'permanent',
      401: 'permanent',
      404: 'permanent',
      409: 'permanent',
      410: 'permanent',
      422: 'permanent',
    });
  });

  it('looks rules up in the order success, permanent, retry, then the defaults', () => {
    const rules = { successStatuses: [409], permanentStatuses: [409, 503], retryStatuses: [503, 404] };
    expect(classifyHttpStatus(409, rules)).toBe('success');
    expect(classifyHttpStatus(503, rules)).toBe('permanent');
    expect(classifyHttpStatus(404, rules)).toBe('retry');
    expect(classifyHttpStatus(500, rules)).toBe('retry');
    expect(classifyHttpStatus(400, rules)).toBe('permanent');
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');

  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Mon, 31 Dec 2029 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('Tuesday, 01-Jan-30 00:01:00 GMT', now)).toBe(60_000);
  });

  it('ignores absent or unreadable values', () => {
    for (const value of [null, undefined, '', '-5', '1.5', 'soon', '2030-01-01T00:00:30Z', '9'.repeat(400)]) {
      expect(parseRetryAfter(value, now), String(value)).toBeNull();
    }
  });
});

describe('answerError', () => {
  const displayUrl = 'https://example.test/hook';
  const answer = (status: number, headers: Record<string, string> = {}, excerpt = 'x') => ({
    status,
    headers: new Headers(headers),
    excerpt,
  });

  it('turns a 503 with Retry-After into a RetryAfterError that names the status', () => {
    const error = answerError(answer(503, { 'retry-after': '7' }), { displayUrl });
    expect(error?.name).toBe('RetryAfterError');
    expect(error?.message).toContain('answered 503');
    expect((error as { retryAfterMs?: number }).retryAfterMs).toBe(7000);
    expect(error?.cause).toBeInstanceOf(HttpStatusError);
  });

  it('caps Retry-After at maxRetryAfterMs', () => {
    const error = answerError(answer(429, { 'retry-after': '86400' }), { displayUrl, maxRetryAfterMs: 5000 });
    expect((error as { retryAfterMs?: number }).retryAfterMs).toBe(5000);
  });

  it('ignores Retry-After on other retryable statuses and keeps a retryable HttpStatusError', () => {
    const error = answerError(answer(500, { 'retry-after': '7' }, ''), { displayUrl });
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(error).toMatchObject({ status: 500, retryable: true, bodyExcerpt: '', code: 'http_status' });
    expect(error?.message).toBe(`POST ${displayUrl} answered 500`);
  });

  it('returns null on success', () => {
    expect(answerError(answer(204), { displayUrl })).toBeNull();
  });
});

describe('createHttpDestination options', () => {
  const bad: [string, Record<string, unknown>][] = [
    ['url', { url: 'ftp://example.test/' }],
    ['url', { url: 'not a url' }],
    ['url', { url: 'https://user:pass@example.test/' }],
    ['secret', { url: 'https://example.test/', secret: '' }],
    ['secret', { url: 'https://example.test/', secret: 'whsec_***' }],
    ['timeoutMs', { url: 'https://example.test/', timeoutMs: 0 }],
    ['timeoutMs', { url: 'https://example.test/', timeoutMs: 1.5 }],
    ['headers.bad header', { url: 'https://example.test/', headers: { 'bad header': 'x' } }],
    ['headers.x-a', { url: 'https://example.test/', headers: { 'x-a': 'line\r\nbreak' } }],
    ['headers.Webhook-Signature', { url: 'https://example.test/', headers: { 'Webhook-Signature': 'v1,x' } }],
    ['rules.retryStatuses.0', { url: 'https://example.test/', rules: { retryStatuses: [99] } }],
    ['rules', { url: 'https://example.test/', rules: { other: [] } }],
    ['(options)', { url: 'https://example.test/', extra: true }],
  ];

  it.each(bad)('refuses a bad %s', (field, options) => {
    const create = () =>
      createHttpDestination(options as unknown as Parameters<typeof createHttpDestination>[0]);
    expect(create).toThrow(InvalidOptionError);
    expect(create).toThrow(`http destination: ${field}:`);
  });

  it('accepts a complete set of options', () => {
    expect(
      typeof createHttpDestination({
        url: 'https://example.test/hook?token=1',
        secret: 'plain-secret',
        headers: { 'X-Api-Key': 'k' },
        timeoutMs: 5000,
        maxRetryAfterMs: 60_000,
        rules: { successStatuses: [409], permanentStatuses: [], retryStatuses: [404] },
      }),
    ).toBe('function');
  });
});
