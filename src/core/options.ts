import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Backend } from '../backends/backend.js';
import { SqliteBackend } from '../backends/sqlite/sqlite-backend.js';
import { systemClock, type Clock } from '../clock.js';
import { InvalidOptionError } from '../errors.js';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../event.js';
import type { AlertThresholds } from '../observability/alerts.js';
import { HEALTH_DEFAULTS, type HealthThresholds } from '../observability/health.js';
import type { LoggerOption } from '../observability/logger.js';

export const DEFAULT_SQLITE_PATH = './data/steadfast.db';
const DAY_MS = 86_400_000;

export type StorageOptions = {
  kind: 'sqlite';
  path?: string;
  busyTimeoutMs?: number;
  watchIntervalMs?: number;
  checkpointIntervalMs?: number;
  walRestartPages?: number;
  walLimitBytes?: number;
};

export interface ProcessorOptions {
  /** Where events live. default `{ kind: 'sqlite', path: './data/steadfast.db' }` */
  storage?: StorageOptions;
  /** A backend instance of your own (instead of `storage`). */
  backend?: Backend;
  /** An `eventId` seen within this window is a duplicate. default 7 days */
  dedupWindowMs?: number;
  /** Events whose deliveries all succeeded are deleted this long after they arrived. default 7 days */
  retentionMs?: number;
  /** How often the retention clean-up runs while started. default 60000 */
  cleanupIntervalMs?: number;
  /** Largest accepted payload, serialised. default 1 MiB */
  maxPayloadBytes?: number;
  /** `stop()` waits this long for running attempts before releasing them. default 10000 */
  shutdownTimeoutMs?: number;
  /** Names this process in leases and logs. default `<hostname>-<pid>-<random>` */
  workerId?: string;
  /** pino logger, pino options, or `false`. default: JSON lines at level `info` */
  logger?: LoggerOption;
  /** Inject a clock (tests). default: the system clock */
  clock?: Clock;
  /** Health thresholds (see `HEALTH_DEFAULTS`). */
  health?: Partial<HealthThresholds>;
  /** Alert thresholds (see `ALERT_DEFAULTS`): dead letters 10, oldest 24 h, backlog 10000, 2 lease expiries, checked every 30 s. */
  alerts?: Partial<AlertThresholds>;
}

const schema = z.strictObject({
  storage: z
    .strictObject({
      kind: z.literal('sqlite'),
      path: z.string().min(1).optional(),
      busyTimeoutMs: z.int().min(0).max(600_000).optional(),
      watchIntervalMs: z.int().min(1).max(60_000).optional(),
      checkpointIntervalMs: z.int().min(1).max(60_000).optional(),
      walRestartPages: z.int().min(1).optional(),
      walLimitBytes: z.int().min(0).optional(),
    })
    .optional(),
  backend: z.custom<Backend>((v) => typeof v === 'object' && v !== null && 'publish' in v).optional(),
  dedupWindowMs: z.int().min(0).optional(),
  retentionMs: z.int().min(0).optional(),
  cleanupIntervalMs: z.int().min(1000).optional(),
  maxPayloadBytes: z
    .int()
    .min(1)
    .max(256 * 1024 * 1024)
    .optional(),
  shutdownTimeoutMs: z.int().min(0).optional(),
  workerId: z.string().min(1).max(200).optional(),
  logger: z.unknown().optional(),
  clock: z
    .custom<Clock>((v) => typeof v === 'object' && v !== null && 'now' in v && 'setTimer' in v)
    .optional(),
  health: z.record(z.string(), z.number()).optional(),
  alerts: z.record(z.string(), z.number()).optional(),
});

export interface ResolvedOptions {
  readonly backend: Backend;
  readonly clock: Clock;
  readonly dedupWindowMs: number;
  readonly retentionMs: number;
  readonly cleanupIntervalMs: number;
  readonly maxPayloadBytes: number;
  readonly shutdownTimeoutMs: number;
  readonly workerId: string;
  readonly logger: LoggerOption;
  readonly health: HealthThresholds;
  readonly alerts: Partial<AlertThresholds>;
}

/** Validates options at construction; an unknown key or a bad value throws `InvalidOptionError`. */
export function resolveOptions(options: ProcessorOptions = {}): ResolvedOptions {
  const parsed = schema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(options)';
    throw new InvalidOptionError(`${field}: ${issue?.message ?? 'invalid option'}`);
  }
  if (options.storage && options.backend) {
    throw new InvalidOptionError('give either storage or backend, not both');
  }
  const clock = options.clock ?? systemClock;
  const backend =
    options.backend ??
    new SqliteBackend({
      path: options.storage?.path ?? DEFAULT_SQLITE_PATH,
      clock,
      busyTimeoutMs: options.storage?.busyTimeoutMs,
      watchIntervalMs: options.storage?.watchIntervalMs,
      checkpointIntervalMs: options.storage?.checkpointIntervalMs,
      walRestartPages: options.storage?.walRestartPages,
      walLimitBytes: options.storage?.walLimitBytes,
    });
  return {
    backend,
    clock,
    dedupWindowMs: options.dedupWindowMs ?? 7 * DAY_MS,
    retentionMs: options.retentionMs ?? 7 * DAY_MS,
    cleanupIntervalMs: options.cleanupIntervalMs ?? 60_000,
    maxPayloadBytes: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 10_000,
    workerId: options.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    logger: options.logger,
    health: { ...HEALTH_DEFAULTS, ...options.health },
    alerts: options.alerts ?? {},
  };
}
