import type { Logger } from 'pino';
import type { Alert } from './alerts.js';

/**
 * Sends each alert as JSON to a URL (`POST`, 5 s timeout). A failed send is logged, never
 * retried: alerts are raised again on the next crossing, and the log keeps every one.
 */
export function createAlertWebhook(
  url: string,
  logger: Logger,
  timeoutMs = 5000,
): (alert: Alert) => Promise<void> {
  return async (alert) => {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'steadfast-alerts' },
        body: JSON.stringify(alert),
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer();
      if (!res.ok)
        logger.warn(
          { url: new URL(url).origin, status: res.status, alert: alert.type },
          'alert webhook refused',
        );
    } catch (error) {
      logger.warn({ url: new URL(url).origin, err: error, alert: alert.type }, 'alert webhook unreachable');
    }
  };
}
