export * from './core/processor.js';
export * from './core/destination.js';
export * from './core/processor-events.js';
export type { ProcessorOptions, StorageOptions } from './core/options.js';
export * from './errors.js';
export * from './event.js';
export * from './json.js';
export * from './clock.js';
export * from './policies/backoff.js';
export * from './policies/retry-policy.js';
export type * from './backends/backend.js';
export { SqliteBackend, type SqliteBackendOptions } from './backends/sqlite/sqlite-backend.js';
export { PostgresBackend, type PostgresBackendOptions } from './backends/postgres/postgres-backend.js';
export { RedisDispatchBackend, type RedisDispatchOptions } from './backends/redis/redis-dispatch-backend.js';
export * from './observability/health.js';
export type { DestinationCounters, ProcessingCounters } from './observability/metrics.js';
export type { Logger, LoggerOption } from './observability/logger.js';
export * from './destinations/standard-webhooks.js';
export {
  BODY_EXCERPT_CHARS,
  HttpStatusError,
  isHttpStatusError,
  type HttpStatusErrorInit,
} from './destinations/http-errors.js';
export {
  classifyHttpStatus,
  createHttpDestination,
  DEFAULT_RETRY_STATUSES,
  HTTP_DESTINATION_DEFAULTS,
  parseRetryAfter,
  RETRY_AFTER_STATUSES,
  webhookBody,
  type HttpDestinationOptions,
  type HttpResponseRules,
  type HttpStatusVerdict,
} from './destinations/http-webhook.js';
export * from './audit/canonical-json.js';
export * from './audit/audit-record.js';
export * from './audit/audit-store-error.js';
export * from './audit/sqlite-audit-store.js';
export * from './destinations/audit-log.js';
export * from './policies/circuit-breaker.js';
export * from './policies/execute-with-retry.js';
export * from './observability/alerts.js';
