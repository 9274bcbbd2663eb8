import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createAlertWebhook } from './alert-webhook.js';
import type { Alert } from './alerts.js';

describe('createAlertWebhook', () => {
  let server: Server | null = null;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it('POSTs the alert as JSON to the URL', async () => {
    const received: unknown[] = [];
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ method: req.method, type: req.headers['content-type'], body: JSON.parse(body) });
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const alert: Alert = {
      type: 'circuit_opened',
      severity: 'critical',
      message: 'circuit of billing opened',
      at: new Date(0).toISOString(),
      destination: 'billing',
      figures: { trips: 1 },
    };
    await createAlertWebhook(`http://127.0.0.1:${port}/alerts`, pino({ enabled: false }))(alert);
    expect(received).toEqual([{ method: 'POST', type: 'application/json', body: alert }]);
  });

  it('logs, and does not throw, when the receiver is unreachable', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(line) });
    const send = createAlertWebhook('http://127.0.0.1:9/alerts', logger);
    await expect(
      send({ type: 'backlog_over_threshold', severity: 'warning', message: 'x', at: '', figures: {} }),
    ).resolves.toBeUndefined();
    expect(lines.join('')).toContain('alert webhook unreachable');
  });
});
