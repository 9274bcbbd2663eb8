import type { FastifyInstance } from 'fastify';
import { HttpError } from '../http-errors.js';
import type { RouteContext } from '../server.js';

/** Liveness with a health summary, readiness, and Prometheus metrics. */
export function registerHealthRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/health', async () => {
    const health = await ctx.processor.getHealthStatus();
    return { ...health, shuttingDown: ctx.lifecycle.shuttingDown };
  });

  app.get('/ready', async () => {
    if (ctx.lifecycle.shuttingDown) throw new HttpError('shutting_down');
    if (!ctx.lifecycle.ready) throw new HttpError('not_ready');
    return { ready: true };
  });

  app.get('/metrics', async (_request, reply) => {
    if (!ctx.metrics) throw new HttpError('not_found', 'metrics are not enabled');
    void reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
