import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { DeadLetterFilter, DeadLetterSelector } from '../../../backends/backend.js';
import { InvalidOptionError } from '../../../errors.js';
import { HttpError } from '../http-errors.js';
import type { RouteContext } from '../server.js';
import { parseJsonBody } from './body.js';

function sameToken(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** 401 without a bearer token, 403 with a wrong one. */
export function requireAdmin(ctx: RouteContext, request: FastifyRequest): void {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer\s+(.+)$/i.exec(header) : null;
  if (!match?.[1]) throw new HttpError('unauthorized');
  if (ctx.settings.adminToken === null || !sameToken(ctx.settings.adminToken, match[1].trim())) {
    throw new HttpError('forbidden');
  }
}

const time = z.union([
  z.iso.datetime({ offset: true }).transform((s) => Date.parse(s)),
  z.coerce.number().int(),
]);
const filterSchema = z.strictObject({
  destination: z.string().min(1).optional(),
  type: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  since: time.optional(),
  until: time.optional(),
});
const listSchema = filterSchema.extend({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  cursor: z.string().min(1).optional(),
});
const selectorSchema = z.union([
  z.strictObject({ ids: z.array(z.string().min(1)).min(1).max(10_000) }),
  z.strictObject({ filter: filterSchema }),
]);

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new HttpError(
    'invalid_request',
    `${issue?.path.join('.') || '(body)'}: ${issue?.message ?? 'invalid'}`,
  );
}

function selector(body: z.infer<typeof selectorSchema>): DeadLetterSelector {
  return 'ids' in body ? body.ids : (body.filter as DeadLetterFilter);
}

/** Dead-letter operations: admin token required. */
export function registerAdminRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/events/failed', async (request) => {
    requireAdmin(ctx, request);
    const query = parse(listSchema, request.query);
    try {
      return await ctx.processor.deadLetters.list(query);
    } catch (error) {
      if (error instanceof InvalidOptionError) throw new HttpError('invalid_request', error.message);
      throw error;
    }
  });

  app.get('/events/failed/:id', async (request) => {
    requireAdmin(ctx, request);
    const { id } = request.params as { id: string };
    const deadLetter = await ctx.processor.deadLetters.get(id);
    if (!deadLetter) throw new HttpError('not_found', `no dead letter ${id}`);
    return deadLetter;
  });

  app.post('/events/dlq/replay', async (request) => {
    requireAdmin(ctx, request);
    const body = parse(selectorSchema, parseJsonBody(request));
    const { replayed, ids } = await ctx.processor.deadLetters.replay(selector(body));
    request.log.info({ correlationId: request.correlationId, replayed }, 'dead letters replayed over HTTP');
    return { replayed, ids };
  });

  app.delete('/events/dlq', async (request) => {
    requireAdmin(ctx, request);
    const body = parse(selectorSchema, parseJsonBody(request));
    const { deleted, ids } = await ctx.processor.deadLetters.delete(selector(body));
    request.log.info({ correlationId: request.correlationId, deleted }, 'dead letters deleted over HTTP');
    return { deleted, ids };
  });
}
