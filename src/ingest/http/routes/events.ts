import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AddEventResult } from '../../../core/processor.js';
import { BackendError, ProcessorClosedError, ShuttingDownError, ValidationError } from '../../../errors.js';
import type { EventInput } from '../../../event.js';
import { verifyRequestSignature, type SignatureHeaders } from '../../signature.js';
import { HttpError } from '../http-errors.js';
import type { RouteContext } from '../server.js';
import { parseJsonBody } from './body.js';

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

function limited(waitMs: number): HttpError {
  const seconds = String(Math.max(1, Math.ceil(waitMs / 1000)));
  return new HttpError(
    'rate_limited',
    undefined,
    { retryAfterSeconds: Number(seconds) },
    { 'retry-after': seconds },
  );
}

/** Checks the signature on the raw body; answers the key of the secret that signed it. */
function authenticate(ctx: RouteContext, request: FastifyRequest): { secretKey: string; webhookId?: string } {
  const { settings } = ctx;
  if (!settings.signatureRequired) return { secretKey: 'unsigned' };
  const headers: SignatureHeaders = {
    'x-hmac-signature': header(request, 'x-hmac-signature'),
    'webhook-id': header(request, 'webhook-id'),
    'webhook-timestamp': header(request, 'webhook-timestamp'),
    'webhook-signature': header(request, 'webhook-signature'),
  };
  const check = verifyRequestSignature(headers, request.rawBody ?? Buffer.alloc(0), settings.hmacSecrets, {
    nowSeconds: ctx.nowSeconds(),
    toleranceSeconds: settings.signatureToleranceSeconds,
  });
  if (!check.ok) throw new HttpError(check.reason);
  return { secretKey: `secret-${check.secretIndex}`, webhookId: check.webhookId };
}

interface Parsed {
  readonly batch: boolean;
  readonly events: EventInput[];
}

function readEvents(ctx: RouteContext, request: FastifyRequest, webhookId: string | undefined): Parsed {
  const body = parseJsonBody(request);
  const isObject = typeof body === 'object' && body !== null && !Array.isArray(body);
  if (!isObject)
    throw new HttpError('invalid_event', 'the body must be an event object or { "events": [...] }');
  const withDefaults = (event: unknown): EventInput => {
    if (typeof event !== 'object' || event === null || Array.isArray(event)) return event as EventInput;
    const e = event as Partial<EventInput>;
    return { ...e, correlationId: e.correlationId ?? request.correlationId } as EventInput;
  };
  if ('events' in body) {
    const events = (body as { events: unknown }).events;
    if (!Array.isArray(events) || events.length === 0 || events.length > ctx.settings.maxBatchEvents) {
      throw new HttpError(
        'invalid_request',
        `events must be an array of 1 to ${ctx.settings.maxBatchEvents} events`,
      );
    }
    return { batch: true, events: events.map(withDefaults) };
  }
  const single = withDefaults(body);
  const eventId = (single as Partial<EventInput>).eventId ?? webhookId;
  return { batch: false, events: [eventId === undefined ? single : { ...single, eventId }] };
}

async function store(ctx: RouteContext, events: EventInput[]): Promise<AddEventResult[]> {
  try {
    return await ctx.processor.addEvents(events);
  } catch (error) {
    if (error instanceof ValidationError) {
      throw new HttpError('invalid_event', error.message, {
        field: error.field,
        index: error.index,
        issues: error.issues,
      });
    }
    if (error instanceof ShuttingDownError || error instanceof ProcessorClosedError) {
      throw new HttpError('shutting_down');
    }
    if (error instanceof BackendError) throw new HttpError('store_unavailable', error.message);
    throw error;
  }
}

/** Ingest and event queries. */
export function registerEventRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post(
    '/events',
    {
      onRequest: async (request) => {
        if (ctx.lifecycle.shuttingDown) throw new HttpError('shutting_down');
        if (!ctx.lifecycle.ready) throw new HttpError('not_ready');
        const wait = ctx.perIp.take(request.ip);
        if (wait > 0) throw limited(wait);
      },
    },
    async (request, reply) => {
      const started = performance.now();
      if (request.rawBody === undefined && !request.headers['content-type']) {
        throw new HttpError('unsupported_media_type');
      }
      const { secretKey, webhookId } = authenticate(ctx, request);
      const wait = ctx.perSecret.take(secretKey);
      if (wait > 0) throw limited(wait);
      const { batch, events } = readEvents(ctx, request, webhookId);
      const results = await store(ctx, events);
      const latencyMs = Math.round((performance.now() - started) * 1000) / 1000;
      const allDuplicates = results.every((r) => r.duplicate);
      void reply.code(allDuplicates ? 200 : 202);
      if (!batch) {
        const [r] = results as [AddEventResult];
        request.log.debug({ eventId: r.eventId, correlationId: r.correlationId }, 'event accepted');
        return {
          accepted: true,
          eventId: r.eventId,
          correlationId: r.correlationId,
          duplicate: r.duplicate,
          latencyMs,
        };
      }
      return {
        accepted: true,
        count: results.length,
        duplicates: results.filter((r) => r.duplicate).length,
        latencyMs,
        results: results.map((r) => ({
          eventId: r.eventId,
          correlationId: r.correlationId,
          duplicate: r.duplicate,
        })),
      };
    },
  );

  app.get('/events/stats', async () => {
    const stats = await ctx.processor.getStats();
    const names = new Set([...Object.keys(stats.queue.byDestination), ...Object.keys(stats.destinations)]);
    return {
      queueDepth: stats.queue.depth,
      deadLetters: {
        count: stats.deadLetters.count,
        oldestAgeMs: stats.deadLetters.oldestAgeMs,
        byDestination: stats.deadLetters.byDestination,
        byType: stats.deadLetters.byType,
        topErrors: stats.deadLetters.topErrors,
      },
      processed: stats.metrics,
      destinations: Object.fromEntries(
        [...names].map((name) => [
          name,
          {
            ...(stats.queue.byDestination[name] ?? {
              pending: 0,
              retrying: 0,
              processing: 0,
              dead: 0,
              oldestPendingAgeMs: null,
            }),
            ...(stats.destinations[name] ?? { succeeded: 0, failed: 0, retried: 0, deadLettered: 0 }),
            circuit: stats.circuits[name] ?? null,
          },
        ]),
      ),
    };
  });

  app.get<{ Params: { eventId: string } }>('/events/:eventId', async (request) => {
    const record = await ctx.processor.getEvent(request.params.eventId);
    if (!record) throw new HttpError('not_found', `no event ${request.params.eventId}`);
    return record;
  });
}
