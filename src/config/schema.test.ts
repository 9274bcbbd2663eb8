import { describe, expect, it } from 'vitest';
import { ConfigError, configIssuesFromZod } from './config-error.js';
import { CONFIG_DEFAULTS, configSchema, type DestinationConfig, type SteadfastConfig } from './schema.js';

/** Validates like the loader does and returns the `ConfigError` message lines (or `[]`). */
function problems(input: unknown): string[] {
  const result = configSchema.safeParse(input);
  if (result.success) return [];
  return new ConfigError(configIssuesFromZod(result.error, () => 'test.json')).message.split('\n');
}

/** Paths of the schema's issues (or `[]`). */
function issues(input: unknown): { path: PropertyKey[] }[] {
  const result = configSchema.safeParse(input);
  return result.success ? [] : result.error.issues.map((issue) => ({ path: issue.path }));
}

const http = (extra: Record<string, unknown> = {}) => ({
  name: 'hook',
  kind: 'http',
  url: 'https://example.com/hook',
  ...extra,
});

describe('configSchema', () => {
  it('fills every default from an empty object', () => {
    const config: SteadfastConfig = configSchema.parse({});
    expect(config).toEqual(CONFIG_DEFAULTS);
    expect(config).toEqual({
      port: 3000,
      host: '0.0.0.0',
      dataDir: './data',
      logLevel: 'info',
      hmacSecrets: [],
      signatureRequired: true,
      signatureToleranceSeconds: 300,
      maxBodyBytes: 1_048_576,
      maxBatchEvents: 1000,
      rateLimit: { perIp: { ratePerSec: 200, burst: 400 }, perSecret: { ratePerSec: 2000, burst: 4000 } },
      dedupWindowMs: 604_800_000,
      retentionMs: 604_800_000,
      shutdownTimeoutMs: 10_000,
      destinations: [{ name: 'audit', kind: 'audit-log', types: '*' }],
      storage: { kind: 'sqlite' },
      dispatch: { kind: 'store' },
    });
    expect(config.adminToken).toBeUndefined();
  });

  it('fills the postgres and redis defaults, and refuses redis dispatch on sqlite', () => {
    const config = configSchema.parse({
      storage: { kind: 'postgres', url: 'postgres://db.internal/events' },
      dispatch: { kind: 'redis', url: 'redis://cache.internal:6379' },
    });
    expect(config.storage).toEqual({
      kind: 'postgres',
      url: 'postgres://db.internal/events',
      schema: 'steadfast',
      poolSize: 10,
      connectAttempts: 10,
      connectRetryDelayMs: 3000,
    });
    expect(config.dispatch).toEqual({
      kind: 'redis',
      url: 'redis://cache.internal:6379',
      prefix: 'steadfast',
      reconcileIntervalMs: 1000,
      connectAttempts: 10,
      connectRetryDelayMs: 3000,
    });
    expect(issues({ dispatch: { kind: 'redis', url: 'redis://x' } })).toContainEqual(
      expect.objectContaining({ path: ['dispatch', 'kind'] }),
    );
    expect(issues({ storage: { kind: 'postgres', url: 'mysql://x' } })[0]?.path).toEqual(['storage', 'url']);
    expect(issues({ storage: { kind: 'mongo' } })[0]?.path).toEqual(['storage', 'kind']);
    expect(
      issues({ storage: { kind: 'postgres', url: 'postgres://x', schema: 'Bad-Name' } })[0]?.path,
    ).toEqual(['storage', 'schema']);
  });

  it('hands out fresh default arrays on every parse', () => {
    const first = configSchema.parse({});
    first.destinations.push({ name: 'extra', kind: 'audit-log' });
    first.hmacSecrets.push('x'.repeat(20));
    expect(configSchema.parse({}).destinations).toHaveLength(1);
    expect(configSchema.parse({}).hmacSecrets).toEqual([]);
    expect(CONFIG_DEFAULTS.destinations).toHaveLength(1);
  });

  it('fills nested rate-limit defaults around a partial value', () => {
    const config = configSchema.parse({ rateLimit: { perIp: { ratePerSec: 5 } } });
    expect(config.rateLimit).toEqual({
      perIp: { ratePerSec: 5, burst: 400 },
      perSecret: { ratePerSec: 2000, burst: 4000 },
    });
  });

  it('accepts 0 as "limit disabled"', () => {
    const config = configSchema.parse({ rateLimit: { perSecret: { ratePerSec: 0, burst: 0 } } });
    expect(config.rateLimit.perSecret).toEqual({ ratePerSec: 0, burst: 0 });
  });

  it('rejects a bucket that could never admit a request', () => {
    expect(problems({ rateLimit: { perIp: { ratePerSec: 10, burst: 0 } } })).toEqual([
      expect.stringMatching(
        /^test\.json: rateLimit\.perIp\.burst: must be at least 1 when ratePerSec is above 0/,
      ),
    ]);
  });

  it('rejects unknown keys at every level, naming each by its path', () => {
    expect(problems({ prot: 3000 })).toEqual(['test.json: prot: unknown option']);
    expect(problems({ rateLimit: { perIp: { burts: 1 } } })).toEqual([
      'test.json: rateLimit.perIp.burts: unknown option',
    ]);
    expect(problems({ rateLimit: { perHost: {} } })).toEqual([
      'test.json: rateLimit.perHost: unknown option',
    ]);
    expect(problems({ destinations: [{ name: 'a', kind: 'audit-log', url: 'https://x.test' }] })).toEqual([
      'test.json: destinations.0.url: unknown option',
    ]);
    expect(problems({ destinations: [http({ retry: { maxAttempt: 3 } })] })).toEqual([
      'test.json: destinations.0.retry.maxAttempt: unknown option',
    ]);
    expect(problems({ destinations: [http({ rules: { okStatuses: [200] } })] })).toEqual([
      'test.json: destinations.0.rules.okStatuses: unknown option',
    ]);
  });

  it('reports every problem, not only the first', () => {
    expect(problems({ port: -1, logLevel: 'loud', extra: true })).toHaveLength(3);
  });

  it.each([
    [{ port: 70_000 }, 'port: Too big'],
    [{ port: 3000.5 }, 'port: Invalid input: expected int'],
    [{ port: '3000' }, 'port: Invalid input: expected number, received string'],
    [{ host: '' }, 'host: Too small'],
    [{ logLevel: 'loud' }, 'logLevel: Invalid option'],
    [{ hmacSecrets: 'one-secret-only-please' }, 'hmacSecrets: Invalid input: expected array'],
    [{ hmacSecrets: ['short'] }, 'hmacSecrets.0: must be at least 16 characters'],
    [{ adminToken: 'short' }, 'adminToken: must be at least 16 characters'],
    [{ signatureRequired: 'yes' }, 'signatureRequired: Invalid input: expected boolean'],
    [{ signatureToleranceSeconds: 0 }, 'signatureToleranceSeconds: Too small'],
    [{ maxBodyBytes: 0 }, 'maxBodyBytes: Too small'],
    [{ maxBatchEvents: 1_000_000 }, 'maxBatchEvents: Too big'],
    [{ dedupWindowMs: -1 }, 'dedupWindowMs: Too small'],
    [{ retentionMs: null }, 'retentionMs: Invalid input'],
    [{ shutdownTimeoutMs: 2 ** 31 }, 'shutdownTimeoutMs: Too big'],
    [{ rateLimit: { perIp: { ratePerSec: -1 } } }, 'rateLimit.perIp.ratePerSec: Too small'],
    [{ destinations: {} }, 'destinations: Invalid input: expected array'],
  ])('names the bad value in %j', (input, expected) => {
    const lines = problems(input);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`test.json: ${expected}`);
  });

  describe('destinations', () => {
    it('accepts both kinds with their common options', () => {
      const destinations: DestinationConfig[] = configSchema.parse({
        destinations: [
          {
            name: 'audit',
            kind: 'audit-log',
            types: ['order.*'],
            ordered: true,
            concurrency: 4,
            onDeadLetter: 'block',
            retry: {
              strategy: 'linear',
              baseDelayMs: 500,
              maxDelayMs: 5000,
              multiplier: 3,
              jitter: true,
              maxAttempts: 3,
              retryableErrorCodes: ['ECONNRESET'],
            },
            timeoutMs: 1000,
            leaseMs: 5000,
          },
          http({
            secret: 'downstream-secret',
            headers: { 'x-tenant': 'acme' },
            rules: { successStatuses: [200, 204], retryStatuses: [429, 503], permanentStatuses: [400] },
          }),
        ],
      }).destinations;
      expect(destinations[0]).toMatchObject({
        kind: 'audit-log',
        ordered: true,
        retry: { strategy: 'linear' },
      });
      expect(destinations[0]?.timeoutMs).toBe(1000);
      expect(destinations[1]).toMatchObject({
        kind: 'http',
        url: 'https://example.com/hook',
        timeoutMs: 10_000,
      });
    });

    it('leaves library-defaulted options unset, and defaults an http timeout to 10000 ms', () => {
      const [audit, hook] = configSchema.parse({
        destinations: [{ name: 'a', kind: 'audit-log' }, http()],
      }).destinations;
      expect(audit).toEqual({ name: 'a', kind: 'audit-log' });
      expect(hook).toEqual({
        name: 'hook',
        kind: 'http',
        url: 'https://example.com/hook',
        timeoutMs: 10_000,
      });
    });

    it('takes a circuit breaker per destination, or false for none, and rejects bad breaker values', () => {
      const parsed = configSchema.parse({
        destinations: [
          http({ circuitBreaker: { failureThreshold: 3, recoveryTimeoutMs: 5000 } }),
          { name: 'a', kind: 'audit-log', circuitBreaker: false },
        ],
      });
      expect(parsed.destinations.map((d) => d.circuitBreaker)).toEqual([
        { failureThreshold: 3, recoveryTimeoutMs: 5000 },
        false,
      ]);
      expect(problems({ destinations: [http({ circuitBreaker: { failureRateThreshold: 2 } })] })[0]).toMatch(
        /^test\.json: destinations\.0\.circuitBreaker/,
      );
      expect(problems({ destinations: [http({ circuitBreaker: { tripAfter: 3 } })] })[0]).toMatch(
        /tripAfter/,
      );
    });

    it('accepts an empty list (ingest only)', () => {
      expect(configSchema.parse({ destinations: [] }).destinations).toEqual([]);
    });

    it('rejects duplicate names, naming the duplicate', () => {
      expect(
        problems({
          destinations: [{ name: 'audit', kind: 'audit-log' }, http(), http({ url: 'http://b.test' })],
        }),
      ).toEqual(['test.json: destinations.2.name: duplicate destination name "hook"']);
    });

    it('rejects an unknown or missing kind', () => {
      expect(problems({ destinations: [{ name: 'a', kind: 'kafka' }] })).toEqual([
        'test.json: destinations.0.kind: must be one of "audit-log", "http"',
      ]);
      expect(problems({ destinations: [{ name: 'a' }] })).toEqual([
        'test.json: destinations.0.kind: must be one of "audit-log", "http"',
      ]);
    });

    it.each([['not a url'], ['ftp://example.com/x'], ['/relative/path'], ['mailto:ops@example.com']])(
      'rejects the url %j',
      (url) => {
        expect(problems({ destinations: [{ name: 'a', kind: 'audit-log' }, http({ url })] })).toEqual([
          'test.json: destinations.1.url: Invalid URL: expected an absolute http:// or https:// URL',
        ]);
      },
    );

    it('accepts http and https URLs, localhost and ports included', () => {
      for (const url of ['http://localhost:8080/hook', 'https://10.0.0.1/x?y=1', 'http://svc.internal']) {
        expect(problems({ destinations: [http({ url })] })).toEqual([]);
      }
    });

    it('requires a url on http destinations', () => {
      expect(problems({ destinations: [{ name: 'hook', kind: 'http' }] })).toEqual([
        'test.json: destinations.0.url: required',
      ]);
    });

    it.each([
      [{ name: 'has space' }, 'destinations.0.name: must be 1-200 characters'],
      [{ name: '' }, 'destinations.0.name: must be 1-200 characters'],
      [{ types: [] }, 'destinations.0.types: Too small: expected array to have >=1 items'],
      [{ types: 'order.*' }, 'destinations.0.types: Invalid input'],
      [{ concurrency: 0 }, 'destinations.0.concurrency: Too small'],
      [{ onDeadLetter: 'drop' }, 'destinations.0.onDeadLetter: Invalid option'],
      [{ timeoutMs: 0 }, 'destinations.0.timeoutMs: Too small'],
      [{ leaseMs: 10 }, 'destinations.0.leaseMs: Too small'],
      [{ retry: { strategy: 'random' } }, 'destinations.0.retry.strategy: Invalid option'],
      [{ retry: { maxAttempts: 0 } }, 'destinations.0.retry.maxAttempts: Too small'],
      [{ retry: { jitter: 2 } }, 'destinations.0.retry.jitter: Too big: expected number to be <=1'],
      [{ retry: { multiplier: 0.5 } }, 'destinations.0.retry.multiplier: Too small'],
      [{ secret: '' }, 'destinations.0.secret: Too small'],
      [{ headers: { 'bad name': 'x' } }, 'destinations.0.headers.bad name: not a valid header name'],
      [
        { headers: { 'x-a': 'a\r\nx-b: b' } },
        'destinations.0.headers.x-a: header values cannot contain CR, LF or NUL',
      ],
      [{ rules: { successStatuses: [] } }, 'destinations.0.rules.successStatuses: Too small'],
      [{ rules: { retryStatuses: [600] } }, 'destinations.0.rules.retryStatuses.0: Too big'],
      [
        { rules: { successStatuses: [200], permanentStatuses: [404, 200] } },
        'destinations.0.rules.permanentStatuses.1: status 200 is already listed in successStatuses',
      ],
    ])('names the bad destination value in %j', (extra, expected) => {
      const lines = problems({ destinations: [http(extra)] });
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`test.json: ${expected}`);
    });
  });
});
