import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { SqliteAuditStore } from '../audit/sqlite-audit-store.js';
import type { SteadfastConfig } from '../config/schema.js';
import { ensureServiceSecrets } from '../config/secrets.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import { buildDestinations } from './destinations.js';
import { buildServer } from '../ingest/http/server.js';
import { createAlertWebhook } from '../observability/alert-webhook.js';

export interface RunningService {
  readonly processor: ReliableEventProcessor;
  readonly app: FastifyInstance;
  /** The address the server listens on, e.g. `http://127.0.0.1:3000`. */
  readonly url: string;
  /** Stop accepting (503, not ready), drain deliveries within the deadline, close everything. */
  close(): Promise<void>;
}

export interface StartedSecrets {
  /** Paths of the secrets `start` generated because none were configured. */
  readonly generated: { readonly hmacSecret?: string; readonly adminToken?: string };
}

/**
 * The service: one process running the HTTP gateway and the workers on the embedded store.
 * Secrets missing from the configuration are generated into the data directory.
 */
export async function startService(
  config: SteadfastConfig,
  logger: Logger,
): Promise<RunningService & StartedSecrets> {
  const secrets = ensureServiceSecrets(config.dataDir, config);
  const processor = createProcessor({
    storage: { kind: 'sqlite', path: join(config.dataDir, 'steadfast.db') },
    logger,
    dedupWindowMs: config.dedupWindowMs,
    retentionMs: config.retentionMs,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  });
  const auditStore = new SqliteAuditStore({ path: join(config.dataDir, 'audit.db') });
  const needsAudit = config.destinations.some((d) => d.kind === 'audit-log');
  if (needsAudit) auditStore.open();
  for (const destination of buildDestinations(config.destinations, { auditStore })) {
    processor.destination(destination.name, destination.options, destination.handler);
  }
  if (config.alertWebhookUrl) {
    const send = createAlertWebhook(config.alertWebhookUrl, logger);
    processor.onAlert((alert) => void send(alert));
  }
  await processor.start();

  const metrics = processor.prometheus;
  const { app, lifecycle } = buildServer({
    processor,
    logger,
    metrics,
    settings: {
      hmacSecrets: secrets.hmacSecrets,
      adminToken: secrets.adminToken,
      signatureRequired: config.signatureRequired,
      signatureToleranceSeconds: config.signatureToleranceSeconds,
      maxBodyBytes: config.maxBodyBytes,
      maxBatchEvents: config.maxBatchEvents,
      rateLimit: config.rateLimit,
    },
  });
  const url = await app.listen({ port: config.port, host: config.host });
  lifecycle.ready = true;

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      lifecycle.shuttingDown = true;
      lifecycle.ready = false;
      await app.close();
      await processor.stop({ timeoutMs: config.shutdownTimeoutMs });
      if (needsAudit) auditStore.close();
    })();
    return closing;
  };
  return { processor, app, url, close, generated: secrets.generated };
}
