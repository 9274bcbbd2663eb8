import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { startService } from '../../src/service/service.js';
import { dropSchema, servicesAvailable, TEST_DATABASE_URL } from '../support/services.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { tempDir } from '../support/temp-dir.js';
import { waitFor } from '../support/wait-for.js';

const available = await servicesAvailable('postgres');
const SECRET = 'postgres-outage-test-secret-0123456789';

describe.skipIf(!available)('PostgreSQL unreachable during a run', () => {
  const schema = `sf_test_${randomBytes(4).toString('hex')}`;
  const dir = tempDir('steadfast-pg-outage-');
  const target = new URL(TEST_DATABASE_URL);
  const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
  const delivered = new Map<string, number>();
  let receiver: Server;
  let receiverUrl: string;

  beforeAll(async () => {
    await proxy.up();
    receiver = createServer((req, res) => {
      const id = req.headers['webhook-id'];
      req.resume();
      req.on('end', () => {
        if (typeof id === 'string') delivered.set(id, (delivered.get(id) ?? 0) + 1);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });

  afterAll(async () => {
    await proxy.down();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
    await dropSchema(schema);
    dir.remove();
  });

  it('answers 503 (never 500, never a false 202) while it cannot commit, and delivers every acknowledged event after', async () => {
    const url = new URL(TEST_DATABASE_URL);
    url.port = String(proxy.port);
    const config = configSchema.parse({
      port: 0,
      host: '127.0.0.1',
      dataDir: dir.path,
      hmacSecrets: [SECRET],
      rateLimit: { perIp: { ratePerSec: 0 }, perSecret: { ratePerSec: 0 } },
      storage: {
        kind: 'postgres',
        url: url.toString(),
        schema,
        connectAttempts: 3,
        connectRetryDelayMs: 100,
      },
      destinations: [
        {
          name: 'hook',
          kind: 'http',
          url: receiverUrl,
          // Signed, so each request carries `webhook-id` (the event id) that the receiver counts by.
          secret: 'postgres-outage-destination-secret',
          retry: { baseDelayMs: 50, maxDelayMs: 500, maxAttempts: 100 },
          circuitBreaker: false,
        },
      ],
    });
    const service = await startService(config, pino({ level: 'silent' }));
    const statuses = new Map<number, number>();
    const acknowledged: string[] = [];
    let n = 0;
    const send = async (): Promise<number> => {
      const eventId = `pg-outage-${n++}`;
      const body = JSON.stringify({ eventId, type: 'outage.test', payload: { n } });
      const res = await fetch(`${service.url}/events`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-hmac-signature': createHmac('sha256', SECRET).update(body).digest('hex'),
        },
        body,
      });
      const json = (await res.json()) as { error?: { code: string } };
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 202) acknowledged.push(eventId);
      if (res.status === 503) expect(json.error?.code).toBe('store_unavailable');
      return res.status;
    };

    try {
      for (let i = 0; i < 100; i++) expect(await send()).toBe(202);

      await proxy.down();
      // While PostgreSQL cannot be reached, every answer is a 503 store_unavailable.
      let unavailable = 0;
      while (unavailable < 5) {
        const status = await send();
        expect([202, 503]).toContain(status);
        if (status === 503) unavailable += 1;
      }
      const deliveredDuringOutage = delivered.size;

      await proxy.up();
      // Back: the gateway acknowledges again (after its pool reconnects), and keeps doing so.
      await waitFor(async () => (await send()) === 202, { timeoutMs: 30_000, intervalMs: 50 });
      for (let i = 0; i < 100; i++) expect(await send()).toBe(202);

      expect(statuses.get(500)).toBeUndefined();
      expect(unavailable).toBe(5);
      await waitFor(() => acknowledged.every((id) => delivered.has(id)), {
        timeoutMs: 60_000,
        message: 'every acknowledged event delivered',
      });
      expect(delivered.size).toBeGreaterThan(deliveredDuringOutage);
      for (const id of acknowledged) expect(delivered.get(id)).toBeGreaterThanOrEqual(1);
    } finally {
      await service.close();
    }
  }, 120_000);
});
