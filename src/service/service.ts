import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { SqliteAuditStore } from '../audit/sqlite-audit-store.js';
import type { SteadfastConfig } from '../config/schema.js';
import { ensureServiceSecrets } from '../config/secrets.js';
import { createProcessor, type ReliableEventProcessor } from '../core/processor.js';
import { buildServer } from '../ingest/http/server.js';
import { createAlertWebhook } from '../observability/alert-webhook.js';
import { createBackend, describeBackend } from './backend.js';
import { buildDestinations } from './destinations.js';

/**
 * What one process runs: `all` the gateway and the workers (`steadfast start`), `gateway` only
 * the HTTP ingest and operator API, `worker` only the deliveries (with /health, /ready and
 * /metrics on its port). Several gateways and workers share one PostgreSQL (and Redis).
 */
export type ServiceRole = 'all' | 'gateway' | 'worker';

export interface RunningService {
  readonly processor: ReliableEventProcessor;
  readonly app: FastifyInstance;
  /** The address the server listens on, e.g. `http://127.0.0.1:3000`. */
  readonly url: string;
  readonly role: ServiceRole;
  /** e.g. `sqlite /srv/data/steadfast.db` or `postgres (schema steadfast) + redis (prefix steadfast)` */
  readonly backend: string;
  /** Stop accepting (503, not ready), drain deliveries within the deadline, close everything. */
  close(): Promise<void>;
}

export interface StartedSecrets {
  /** Paths of the secrets `start` generated because none were configured. */
  readonly generated: { readonly hmacSecret?: string; readonly adminToken?: string };
}

export interface StartServiceOptions {
  /** default `all` */
  readonly role?: ServiceRole;
}

/**
 * Starts the service. The HTTP server listens first and answers `/ready` 503 (and ingest 503
 * `not_ready`) while the backend connects, with the retries its configuration gives; if it never
 * connects, everything is closed again and the error is thrown. Secrets missing from the
 * configuration are generated into the data directory.
 */
export async function startService(
  config: SteadfastConfig,
  logger: Logger,
  options: StartServiceOptions = {},
): Promise<RunningService & StartedSecrets> {
  const role = options.role ?? 'all';
  const runsWorkers = role !== 'gateway';
  const secrets = ensureServiceSecrets(config.dataDir, config);
  const processor = createProcessor({
    backend: createBackend(config, logger),
    logger,
    dedupWindowMs: config.dedupWindowMs,
    retentionMs: config.retentionMs,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  });
  const auditStore = new SqliteAuditStore({ path: join(config.dataDir, 'audit.db') });
  const needsAudit = runsWorkers && config.destinations.some((d) => d.kind === 'audit-log');
  // Every role declares every destination: a gateway records them so that ingest fans out to
  // them; only processes that run workers ever call the handlers.
  for (const destination of buildDestinations(config.destinations, { auditStore })) {
    processor.destination(destination.name, destination.options, destination.handler);
  }
  if (runsWorkers && config.alertWebhookUrl) {
    const send = createAlertWebhook(config.alertWebhookUrl, logger);
    processor.onAlert((alert) => void send(alert));
  }

  const { app, lifecycle } = buildServer({
    processor,
    logger,
    metrics: processor.prometheus,
    routes: role === 'worker' ? 'operations' : 'all',
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
  const backend = describeBackend(config);
  try {
    if (needsAudit) auditStore.open();
    if (runsWorkers) await processor.start();
    else await processor.open();
  } catch (error) {
    logger.error({ err: error, backend }, 'the store could not be opened');
    await app.close();
    await processor.stop({ timeoutMs: 0 }).catch(() => undefined);
    if (needsAudit) auditStore.close();
    throw error;
  }
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
  return { processor, app, url, role, backend, close, generated: secrets.generated };
}
