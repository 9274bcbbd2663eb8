import type { Logger } from 'pino';
import type { ProcessorEvents } from '../core/processor-events.js';

/** One log line per state change that matters, each carrying the event and correlation ids. */
export function subscribeLogs(events: ProcessorEvents, logger: Logger): () => void {
  const off = [
    events.on('processor:started', (e) => logger.info(e, 'processor started')),
    events.on('processor:stopped', (e) => logger.info(e, 'processor stopped')),
    events.on('processor:error', ({ error, during }) =>
      logger.error({ err: error, during }, 'processor error'),
    ),
    events.on('delivery:retry-scheduled', (e) =>
      logger.info(
        {
          eventId: e.eventId,
          correlationId: e.correlationId,
          destination: e.destination,
          deliveryId: e.deliveryId,
          attempt: e.attempt,
          delayMs: e.delayMs,
          error: e.error.message,
        },
        'delivery failed, retry scheduled',
      ),
    ),
    events.on('delivery:dead-lettered', (e) =>
      logger.warn(
        {
          eventId: e.eventId,
          correlationId: e.correlationId,
          destination: e.destination,
          deliveryId: e.deliveryId,
          attempt: e.attempt,
          reason: e.reason,
          error: e.error,
        },
        'delivery dead-lettered',
      ),
    ),
    events.on('delivery:lease-recovered', (e) =>
      logger.warn(e, 'took over a delivery whose worker stopped renewing its lease'),
    ),
    events.on('delivery:lease-lost', (e) => logger.warn(e, 'lease lost before the attempt was recorded')),
    events.on('circuit:state-changed', (e) =>
      (e.to === 'open' ? logger.warn.bind(logger) : logger.info.bind(logger))(
        { destination: e.destination, from: e.from, to: e.to, reason: e.reason, trips: e.trips },
        e.to === 'open' ? 'circuit opened: deliveries to this destination are paused' : `circuit ${e.to}`,
      ),
    ),
    events.on('dead-letters:replayed', (e) => logger.info({ count: e.ids.length }, 'dead letters replayed')),
    events.on('dead-letters:deleted', (e) => logger.info({ count: e.ids.length }, 'dead letters deleted')),
  ];
  return () => off.forEach((f) => f());
}
