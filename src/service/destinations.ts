import type { SqliteAuditStore } from '../audit/sqlite-audit-store.js';
import type { DestinationConfig } from '../config/schema.js';
import type { DestinationOptions, Handler } from '../core/destination.js';
import { createAuditLogDestination } from '../destinations/audit-log.js';
import { createHttpDestination } from '../destinations/http-webhook.js';

export interface BuiltDestination {
  readonly name: string;
  readonly options: DestinationOptions;
  readonly handler: Handler;
}

/** Turns the configured destinations into processor destinations with their handlers. */
export function buildDestinations(
  configs: readonly DestinationConfig[],
  deps: { readonly auditStore: SqliteAuditStore },
): BuiltDestination[] {
  return configs.map((config) => {
    const options: DestinationOptions = {
      types: config.types,
      ordered: config.ordered,
      concurrency: config.concurrency,
      onDeadLetter: config.onDeadLetter,
      retry: config.retry,
      leaseMs: config.leaseMs,
      circuitBreaker: config.circuitBreaker,
    };
    switch (config.kind) {
      case 'audit-log':
        return {
          name: config.name,
          options: { ...options, timeoutMs: config.timeoutMs },
          handler: createAuditLogDestination({ store: deps.auditStore }),
        };
      case 'http':
        return {
          name: config.name,
          // The attempt's own deadline leaves the request's timeout room to report itself.
          options: { ...options, timeoutMs: config.timeoutMs + 1000 },
          handler: createHttpDestination({
            url: config.url,
            secret: config.secret,
            headers: config.headers,
            timeoutMs: config.timeoutMs,
            rules: config.rules,
          }),
        };
    }
  });
}
