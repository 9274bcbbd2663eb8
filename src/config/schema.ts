import { z } from 'zod';

/**
 * Every default of the service configuration, in one place. `configSchema.parse({})` returns
 * exactly this (with fresh arrays).
 */
export const CONFIG_DEFAULTS = {
  port: 3000,
  host: '0.0.0.0',
  dataDir: './data',
  logLevel: 'info',
  hmacSecrets: [],
  signatureRequired: true,
  signatureToleranceSeconds: 300,
  maxBodyBytes: 1_048_576,
  maxBatchEvents: 1000,
  rateLimit: {
    perIp: { ratePerSec: 200, burst: 400 },
    perSecret: { ratePerSec: 2000, burst: 4000 },
  },
  dedupWindowMs: 604_800_000,
  retentionMs: 604_800_000,
  shutdownTimeoutMs: 10_000,
  destinations: [{ name: 'audit', kind: 'audit-log', types: '*' }],
  storage: { kind: 'sqlite' },
  dispatch: { kind: 'store' },
} as const;

/** Defaults of `storage` when `kind` is `postgres`. */
export const POSTGRES_STORAGE_DEFAULTS = {
  schema: 'steadfast',
  poolSize: 10,
  connectAttempts: 10,
  connectRetryDelayMs: 3000,
} as const;

/** Defaults of `dispatch` when `kind` is `redis`. */
export const REDIS_DISPATCH_CONFIG_DEFAULTS = {
  prefix: 'steadfast',
  reconcileIntervalMs: 1000,
  connectAttempts: 10,
  connectRetryDelayMs: 3000,
} as const;

/** Default `timeoutMs` of an `http` destination (other destinations default to the library's 30000). */
export const HTTP_DESTINATION_TIMEOUT_MS = 10_000;

/** Log levels of pino, from most to least severe; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Shortest accepted HMAC secret or admin token, in characters. */
export const MIN_SECRET_LENGTH = 16;

/** Same rule as `processor.destination()` (src/core/destination.ts). */
const DESTINATION_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;
/** RFC 9110 field-name token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** No CR, LF or NUL in a header value (header injection). */
const HEADER_VALUE = /^[^\r\n\0]*$/;
/** Longest timer Node.js can set. */
const MAX_TIMER_MS = 2_147_483_647;

const secretString = z
  .string()
  .min(MIN_SECRET_LENGTH, { error: `must be at least ${MIN_SECRET_LENGTH} characters` })
  .max(4096);

/** A token bucket: `ratePerSec` tokens are added every second, up to `burst`; each request takes one. */
const tokenBucketSchema = (defaults: { readonly ratePerSec: number; readonly burst: number }) =>
  z
    .strictObject({
      /** Sustained requests per second; `0` disables this limit. */
      ratePerSec: z.number().min(0).max(1_000_000).default(defaults.ratePerSec),
      /** Requests allowed at once after a quiet period (bucket size). */
      burst: z.int().min(0).max(10_000_000).default(defaults.burst),
    })
    .refine((bucket) => bucket.ratePerSec === 0 || bucket.burst >= 1, {
      error: 'must be at least 1 when ratePerSec is above 0 (set ratePerSec to 0 to disable the limit)',
      path: ['burst'],
    })
    .prefault({});

/** Retry policy of a destination; every field defaults to the library's retry defaults. */
const retrySchema = z.strictObject({
  /** default `'exponential'` */
  strategy: z.enum(['exponential', 'linear', 'fixed']).optional(),
  /** First delay. default 1000 */
  baseDelayMs: z.int().min(0).max(MAX_TIMER_MS).optional(),
  /** No delay is longer. default 30000 */
  maxDelayMs: z.int().min(0).max(MAX_TIMER_MS).optional(),
  /** Growth factor of `exponential`. default 2 */
  multiplier: z.number().min(1).max(100).optional(),
  /** Spread of each delay as a fraction (0.1 = ±10 %); `true` = 0.1, `false` = none. default 0.1 */
  jitter: z.union([z.number().min(0).max(1), z.boolean()]).optional(),
  /** Attempts in all, the first included. default 5 */
  maxAttempts: z.int().min(1).max(1000).optional(),
  /** Error codes worth another attempt. default: the network codes (`DEFAULT_RETRYABLE_ERROR_CODES`) */
  retryableErrorCodes: z.array(z.string().min(1).max(200)).optional(),
});

/** Fields every destination kind has; the defaults are those of `processor.destination()`. */
const commonDestinationFields = {
  /** Unique name: 1–200 letters, digits, `.`, `_`, `:` or `-`, starting with a letter or digit. */
  name: z.string().regex(DESTINATION_NAME, {
    error:
      "must be 1-200 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
  }),
  /** Event types delivered: exact names, `prefix.*` patterns, or `'*'`. default `'*'` */
  types: z.union([z.literal('*'), z.array(z.string().min(1).max(200)).min(1)]).optional(),
  /** Same-key events one at a time, in order. default `false` */
  ordered: z.boolean().optional(),
  /** Attempts running at once in this process. default 10 */
  concurrency: z.int().min(1).max(10_000).optional(),
  /** Ordered only: `skip` lets the key go on after a dead letter, `block` holds it. default `'skip'` */
  onDeadLetter: z.enum(['skip', 'block']).optional(),
  /** Retry policy. default: exponential from 1000 ms, ×2, max 30000 ms, ±10 % jitter, 5 attempts */
  retry: retrySchema.optional(),
  /** An attempt not settled by then fails (retryable). default 30000 */
  timeoutMs: z.int().min(1).max(86_400_000).optional(),
  /** Lease of a claimed delivery, renewed every third of it. default 30000 */
  leaseMs: z.int().min(50).max(86_400_000).optional(),
  /**
   * The destination's circuit breaker, or `false` for none. default: on with 5 consecutive
   * failures or 50 % of at least 10 calls in 60 s, open for 30 s, 1 probe
   */
  circuitBreaker: z
    .union([
      z.literal(false),
      z.strictObject({
        failureThreshold: z.int().min(1).optional(),
        recoveryTimeoutMs: z.int().min(0).optional(),
        monitoringPeriodMs: z.int().min(1).optional(),
        minimumThroughput: z.int().min(1).optional(),
        failureRateThreshold: z.number().gt(0).max(1).optional(),
        halfOpenMaxProbes: z.int().min(1).optional(),
      }),
    ])
    .optional(),
};

const auditLogDestinationSchema = z.strictObject({
  ...commonDestinationFields,
  /** Writes each event to the built-in audit log. */
  kind: z.literal('audit-log'),
});

const statusList = z.array(z.int().min(100).max(599));

/** Which HTTP statuses mean success, retry later, or give up; a status may appear in one list only. */
const httpRulesSchema = z
  .strictObject({
    /** Statuses that complete the delivery. default: the HTTP destination's built-in rule */
    successStatuses: statusList.min(1).optional(),
    /** Statuses retried with backoff. default: the HTTP destination's built-in rule */
    retryStatuses: statusList.optional(),
    /** Statuses dead-lettered at once. default: the HTTP destination's built-in rule */
    permanentStatuses: statusList.optional(),
  })
  .superRefine((rules, ctx) => {
    const seen = new Map<number, string>();
    for (const list of ['successStatuses', 'retryStatuses', 'permanentStatuses'] as const) {
      (rules[list] ?? []).forEach((status, index) => {
        const first = seen.get(status);
        if (first !== undefined && first !== list) {
          ctx.addIssue({
            code: 'custom',
            path: [list, index],
            message: `status ${status} is already listed in ${first}`,
          });
        }
        seen.set(status, first ?? list);
      });
    }
  });

const httpDestinationSchema = z.strictObject({
  ...commonDestinationFields,
  /** POSTs each event as JSON to `url`. */
  kind: z.literal('http'),
  /** Absolute `http://` or `https://` URL the events are POSTed to. */
  url: z.url({
    protocol: /^https?$/,
    error: (issue) =>
      issue.input === undefined ? 'required' : 'Invalid URL: expected an absolute http:// or https:// URL',
  }),
  /** Signs each request with HMAC-SHA256 when set. default: unsigned */
  secret: z.string().min(1).max(4096).optional(),
  /** Extra request headers. default none */
  headers: z
    .record(
      z.string().regex(HEADER_NAME, { error: 'not a valid header name' }),
      z.string().max(8192).regex(HEADER_VALUE, { error: 'header values cannot contain CR, LF or NUL' }),
    )
    .optional(),
  /** An attempt not answered by then fails (retryable). default 10000 */
  timeoutMs: z.int().min(1).max(86_400_000).default(HTTP_DESTINATION_TIMEOUT_MS),
  /** Status classification. default: the HTTP destination's built-in rules */
  rules: httpRulesSchema.optional(),
});

/** Connecting at start-up: how many tries, and the pause between them. */
const connectFields = (defaults: {
  readonly connectAttempts: number;
  readonly connectRetryDelayMs: number;
}) => ({
  /** Connect tries at start-up before the process gives up and exits non-zero. default 10 */
  connectAttempts: z.int().min(1).max(10_000).default(defaults.connectAttempts),
  /** Pause between those tries. default 3000 */
  connectRetryDelayMs: z.int().min(0).max(600_000).default(defaults.connectRetryDelayMs),
});

/** Where events, deliveries and dead letters are recorded. */
const storageSchema = z.discriminatedUnion(
  'kind',
  [
    /** One SQLite file, `<dataDir>/steadfast.db`: one machine, no server to run. */
    z.strictObject({ kind: z.literal('sqlite') }),
    /** PostgreSQL: several gateway and worker processes on several machines share it. */
    z.strictObject({
      kind: z.literal('postgres'),
      /** `postgres://user:password@host:port/database` (also `STEADFAST_DATABASE_URL`). */
      url: z.string().regex(/^postgres(ql)?:\/\/./, { error: 'expected a postgres:// URL' }),
      /** Schema holding every table; created if missing. default `'steadfast'` */
      schema: z
        .string()
        .regex(/^[a-z_][a-z0-9_]{0,47}$/, { error: 'must be lower-case letters, digits and _, at most 48' })
        .default(POSTGRES_STORAGE_DEFAULTS.schema),
      /** Connections per process. default 10 */
      poolSize: z.int().min(1).max(1000).default(POSTGRES_STORAGE_DEFAULTS.poolSize),
      ...connectFields(POSTGRES_STORAGE_DEFAULTS),
    }),
  ],
  {
    error: (issue) =>
      issue.code === 'invalid_union' ? `kind must be one of "sqlite", "postgres"` : undefined,
  },
);

/** How work reaches the workers. */
const dispatchSchema = z.discriminatedUnion(
  'kind',
  [
    /** Workers claim straight from the store (SQLite polling of its file, PostgreSQL LISTEN/NOTIFY). */
    z.strictObject({ kind: z.literal('store') }),
    /** BullMQ on Redis carries one job per delivery between processes; the store stays the record. */
    z.strictObject({
      kind: z.literal('redis'),
      /** `redis://host:port[/db]` (also `STEADFAST_REDIS_URL`). */
      url: z.string().regex(/^rediss?:\/\/./, { error: 'expected a redis:// URL' }),
      /** Key prefix of the queues. default `'steadfast'` */
      prefix: z.string().min(1).max(100).default(REDIS_DISPATCH_CONFIG_DEFAULTS.prefix),
      /** How often the store is compared with Redis to re-enqueue lost jobs. default 1000 */
      reconcileIntervalMs: z
        .int()
        .min(10)
        .max(3_600_000)
        .default(REDIS_DISPATCH_CONFIG_DEFAULTS.reconcileIntervalMs),
      ...connectFields(REDIS_DISPATCH_CONFIG_DEFAULTS),
    }),
  ],
  {
    error: (issue) => (issue.code === 'invalid_union' ? `kind must be one of "store", "redis"` : undefined),
  },
);

/** One destination of the service, discriminated on `kind`. */
export const destinationSchema = z.discriminatedUnion(
  'kind',
  [auditLogDestinationSchema, httpDestinationSchema],
  {
    error: (issue) => (issue.code === 'invalid_union' ? `must be one of "audit-log", "http"` : undefined),
  },
);

/**
 * The service's one configuration schema. Unknown keys are rejected at every level, every
 * option has a default (`CONFIG_DEFAULTS`), and units are in the names.
 */
export const configSchema = z
  .strictObject({
    /** The store of record. default `{ kind: 'sqlite' }` (`<dataDir>/steadfast.db`) */
    storage: storageSchema.default(() => ({ kind: 'sqlite' as const })),
    /** How work reaches workers. default `{ kind: 'store' }`; `redis` needs `postgres` storage */
    dispatch: dispatchSchema.default(() => ({ kind: 'store' as const })),
    /** Each alert is also POSTed as JSON to this URL. default: none (alerts are logged) */
    alertWebhookUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** TCP port of the HTTP server; `0` picks a free one. default 3000 */
    port: z.int().min(0).max(65_535).default(CONFIG_DEFAULTS.port),
    /** Interface the HTTP server listens on. default `'0.0.0.0'` */
    host: z.string().min(1).max(255).default(CONFIG_DEFAULTS.host),
    /** Folder of the SQLite store and the generated secrets. default `'./data'` */
    dataDir: z.string().min(1).default(CONFIG_DEFAULTS.dataDir),
    /** pino log level. default `'info'` */
    logLevel: z.enum(LOG_LEVELS).default(CONFIG_DEFAULTS.logLevel),
    /**
     * Secrets that may sign incoming requests (several, to rotate). default `[]`: one is read from,
     * or generated into, `<dataDir>/hmac-secret`.
     */
    hmacSecrets: z.array(secretString).default(() => []),
    /** Bearer token of the admin routes. default: read from, or generated into, `<dataDir>/admin-token` */
    adminToken: secretString.optional(),
    /** Reject unsigned requests. default `true` */
    signatureRequired: z.boolean().default(CONFIG_DEFAULTS.signatureRequired),
    /** Largest accepted difference between a signature's timestamp and now. default 300 */
    signatureToleranceSeconds: z.int().min(1).max(86_400).default(CONFIG_DEFAULTS.signatureToleranceSeconds),
    /** Largest accepted request body. default 1048576 (1 MiB) */
    maxBodyBytes: z
      .int()
      .min(1)
      .max(256 * 1024 * 1024)
      .default(CONFIG_DEFAULTS.maxBodyBytes),
    /** Most events in one batch request. default 1000 */
    maxBatchEvents: z.int().min(1).max(100_000).default(CONFIG_DEFAULTS.maxBatchEvents),
    /** Ingest rate limits (token buckets). */
    rateLimit: z
      .strictObject({
        /** Per client IP address. default 200/s, burst 400 */
        perIp: tokenBucketSchema(CONFIG_DEFAULTS.rateLimit.perIp),
        /** Per HMAC secret that signed the request. default 2000/s, burst 4000 */
        perSecret: tokenBucketSchema(CONFIG_DEFAULTS.rateLimit.perSecret),
      })
      .prefault({}),
    /** A repeated `eventId` within this window is a duplicate. default 604800000 (7 days) */
    dedupWindowMs: z.int().min(0).default(CONFIG_DEFAULTS.dedupWindowMs),
    /** Delivered events are deleted this long after arrival. default 604800000 (7 days) */
    retentionMs: z.int().min(0).default(CONFIG_DEFAULTS.retentionMs),
    /** Grace period for running attempts on shutdown. default 10000 */
    shutdownTimeoutMs: z.int().min(0).max(MAX_TIMER_MS).default(CONFIG_DEFAULTS.shutdownTimeoutMs),
    /** Where events go; names are unique. default: one `audit-log` destination named `audit` for every type */
    destinations: z
      .array(destinationSchema)
      .superRefine((destinations, ctx) => {
        const seen = new Set<string>();
        destinations.forEach((destination, index) => {
          if (seen.has(destination.name)) {
            ctx.addIssue({
              code: 'custom',
              path: [index, 'name'],
              message: `duplicate destination name "${destination.name}"`,
            });
          }
          seen.add(destination.name);
        });
      })
      .default(() => CONFIG_DEFAULTS.destinations.map((destination) => ({ ...destination }))),
  })
  .superRefine((config, ctx) => {
    if (config.dispatch.kind === 'redis' && config.storage.kind !== 'postgres') {
      ctx.addIssue({
        code: 'custom',
        path: ['dispatch', 'kind'],
        message:
          'redis dispatch needs postgres storage (set storage.kind to "postgres" or STEADFAST_DATABASE_URL)',
      });
    }
  });

/** The validated service configuration, every default applied. */
export type SteadfastConfig = z.output<typeof configSchema>;

/** What a config file (or any other input) may contain: every key optional. */
export type SteadfastConfigInput = z.input<typeof configSchema>;

/** One validated destination (`audit-log` or `http`). */
export type DestinationConfig = z.output<typeof destinationSchema>;

/** Retry policy of a destination, as configured. */
export type RetryConfig = z.output<typeof retrySchema>;

/** The store of record, as configured. */
export type StorageConfig = SteadfastConfig['storage'];

/** How work reaches the workers, as configured. */
export type DispatchConfig = SteadfastConfig['dispatch'];

/** A token-bucket rate limit, as configured. */
export type TokenBucketConfig = SteadfastConfig['rateLimit']['perIp'];
