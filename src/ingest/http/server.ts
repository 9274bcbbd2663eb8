import { randomUUID } from 'node:crypto';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import type { ReliableEventProcessor } from '../../core/processor.js';
import type { PrometheusMetrics } from '../../observability/prometheus.js';
import { RateLimiter } from '../rate-limiter.js';
import { errorBody, HttpError, HTTP_ERRORS, type HttpErrorCode } from './http-errors.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerEventRoutes } from './routes/events.js';
import { registerHealthRoutes } from './routes/health.js';

export interface RateLimitSettings {
  /** Tokens regained per second; 0 disables. */
  readonly ratePerSec: number;
  readonly burst: number;
}

export interface IngestSettings {
  /** Active signing secrets; any of them may sign (rotation). */
  readonly hmacSecrets: readonly string[];
  /** Bearer token for admin routes; null leaves them closed to everyone. */
  readonly adminToken: string | null;
  /** default true */
  readonly signatureRequired: boolean;
  /** Standard Webhooks timestamp window, ± seconds. default 300 */
  readonly signatureToleranceSeconds: number;
  /** default 1048576 */
  readonly maxBodyBytes: number;
  /** Events in one `{ events: [...] }` batch. default 1000 */
  readonly maxBatchEvents: number;
  readonly rateLimit: { readonly perIp: RateLimitSettings; readonly perSecret: RateLimitSettings };
}

export interface ServerDeps {
  readonly processor: ReliableEventProcessor;
  readonly settings: IngestSettings;
  readonly logger: Logger;
  readonly metrics?: PrometheusMetrics;
  /** Seconds since the epoch, for signature timestamps. */
  readonly nowSeconds?: () => number;
  /**
   * `all`: ingest, inspection, admin and health routes (a gateway). `operations`: only
   * /health, /ready and /metrics (a worker). default `all`
   */
  readonly routes?: 'all' | 'operations';
}

/** What routes share: the dependencies plus the service's lifecycle flags. */
export interface RouteContext extends ServerDeps {
  readonly perIp: RateLimiter;
  readonly perSecret: RateLimiter;
  readonly nowSeconds: () => number;
  readonly lifecycle: { ready: boolean; shuttingDown: boolean };
}

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: Buffer;
    correlationId: string;
  }
}

const FASTIFY_CODES: Record<string, HttpErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
};

function sendError(reply: FastifyReply, error: HttpError): FastifyReply {
  if (error.headers) void reply.headers(error.headers);
  return reply.code(error.status).send(errorBody(error.code, error.message, error.details));
}

/**
 * The HTTP application, without `listen`: tests drive it with `inject()`. JSON bodies are kept
 * raw (the signature is over the exact bytes) and parsed by the routes.
 */
export function buildServer(deps: ServerDeps): {
  app: FastifyInstance;
  lifecycle: RouteContext['lifecycle'];
} {
  const { settings } = deps;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: settings.maxBodyBytes,
    genReqId: () => randomUUID(),
    return503OnClosing: true,
  });
  const lifecycle = { ready: false, shuttingDown: false };
  const ctx: RouteContext = {
    ...deps,
    perIp: new RateLimiter(settings.rateLimit.perIp.ratePerSec, settings.rateLimit.perIp.burst),
    perSecret: new RateLimiter(settings.rateLimit.perSecret.ratePerSec, settings.rateLimit.perSecret.burst),
    nowSeconds: deps.nowSeconds ?? (() => Math.floor(Date.now() / 1000)),
    lifecycle,
  };

  app.removeAllContentTypeParsers();
  const keepRaw = (
    request: FastifyRequest,
    body: Buffer,
    done: (error: Error | null, body?: unknown) => void,
  ) => {
    request.rawBody = body;
    done(null, body);
  };
  const asBuffer = { parseAs: 'buffer', bodyLimit: settings.maxBodyBytes } as const;
  app.addContentTypeParser('application/json', asBuffer, keepRaw);
  app.addContentTypeParser(/^application\/[\w.-]+\+json\s*(;.*)?$/, asBuffer, keepRaw);

  app.decorateRequest('correlationId', '');
  app.addHook('onRequest', async (request, reply) => {
    const given = request.headers['x-correlation-id'];
    request.correlationId =
      typeof given === 'string' && given.length > 0 && given.length <= 200 ? given : randomUUID();
    void reply.header('x-correlation-id', request.correlationId);
  });
  // While shutting down, answered keep-alive connections are closed, so `close()` does not wait
  // for idle sockets to time out.
  app.addHook('onSend', async (_request, reply) => {
    if (lifecycle.shuttingDown) void reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    deps.metrics?.observeHttp(route, reply.statusCode, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((error: FastifyError | HttpError, request, reply) => {
    if (error instanceof HttpError) return sendError(reply, error);
    const mapped = error.code ? FASTIFY_CODES[error.code] : undefined;
    if (mapped) return sendError(reply, new HttpError(mapped));
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(reply, new HttpError('invalid_request', error.message));
    }
    request.log.error({ err: error, correlationId: request.correlationId }, 'request failed');
    return sendError(reply, new HttpError('internal_error'));
  });
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) =>
    sendError(reply, new HttpError('not_found', `no route ${request.method} ${request.url}`)),
  );

  registerHealthRoutes(app, ctx);
  if ((deps.routes ?? 'all') === 'all') {
    registerEventRoutes(app, ctx);
    registerAdminRoutes(app, ctx);
  }
  return { app, lifecycle };
}

export { HTTP_ERRORS };
