import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { ConfigError } from './config-error.js';
import { loadConfig, type LoadConfigOptions } from './load.js';
import { CONFIG_DEFAULTS } from './schema.js';

const SECRET_A = 'file-secret-aaaaaaaaaaaa';
const SECRET_B = 'env-secret-bbbbbbbbbbbbb';
const SECRET_C = 'env-secret-cccccccccccccc';

let dir: ReturnType<typeof tempDir>;
beforeEach(() => {
  dir = tempDir('steadfast-config-');
});
afterEach(() => dir.remove());

function writeJson(name: string, value: unknown): string {
  const path = join(dir.path, name);
  writeFileSync(path, JSON.stringify(value));
  return path;
}

function load(options: Omit<LoadConfigOptions, 'cwd'> = {}) {
  return loadConfig({ env: {}, cwd: dir.path, ...options });
}

/** Runs `fn`, expects a `ConfigError`, and returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('config_error');
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  describe('defaults', () => {
    it('returns the defaults when there is no file, no environment and no flag', () => {
      const config = load();
      expect(config).toEqual({ ...CONFIG_DEFAULTS, dataDir: join(dir.path, 'data') });
    });

    it('resolves a relative dataDir against cwd and keeps an absolute one', () => {
      expect(load({ flags: { data: 'store' } }).dataDir).toBe(join(dir.path, 'store'));
      const absolute = join(dir.path, 'elsewhere');
      expect(load({ flags: { data: absolute } }).dataDir).toBe(absolute);
    });

    it('reads process.env and process.cwd() only when not given', () => {
      const saved = process.env.STEADFAST_PORT;
      process.env.STEADFAST_PORT = '4444';
      try {
        expect(loadConfig({ env: {}, cwd: dir.path }).port).toBe(3000);
        expect(loadConfig({ cwd: dir.path }).port).toBe(4444);
      } finally {
        if (saved === undefined) delete process.env.STEADFAST_PORT;
        else process.env.STEADFAST_PORT = saved;
      }
    });
  });

  describe('config file', () => {
    it('reads steadfast.config.json from cwd when it exists', () => {
      writeJson('steadfast.config.json', { port: 4000, rateLimit: { perIp: { burst: 10 } } });
      const config = load();
      expect(config.port).toBe(4000);
      expect(config.rateLimit.perIp).toEqual({ ratePerSec: 200, burst: 10 });
      expect(config.host).toBe('0.0.0.0');
    });

    it('reads the file named by STEADFAST_CONFIG, relative to cwd', () => {
      writeJson('steadfast.config.json', { port: 4000 });
      mkdirSync(join(dir.path, 'etc'));
      writeJson('etc/other.json', { port: 4001 });
      expect(load({ env: { STEADFAST_CONFIG: 'etc/other.json' } }).port).toBe(4001);
    });

    it('reads the file named by --config over STEADFAST_CONFIG and the default file', () => {
      writeJson('steadfast.config.json', { port: 4000 });
      writeJson('env.json', { port: 4001 });
      const flagged = writeJson('flag.json', { port: 4002 });
      expect(load({ env: { STEADFAST_CONFIG: 'env.json' }, flags: { config: flagged } }).port).toBe(4002);
    });

    it('fails when a named file does not exist, naming who named it', () => {
      const viaFlag = configError(() => load({ flags: { config: 'missing.json' } }));
      expect(viaFlag.message).toBe(`--config: config file not found: ${join(dir.path, 'missing.json')}`);
      expect(viaFlag.source).toBe('--config');

      const viaEnv = configError(() => load({ env: { STEADFAST_CONFIG: 'missing.json' } }));
      expect(viaEnv.message).toBe(
        `STEADFAST_CONFIG: config file not found: ${join(dir.path, 'missing.json')}`,
      );
    });

    it('fails when a config path is a directory', () => {
      mkdirSync(join(dir.path, 'steadfast.config.json'));
      const error = configError(() => load());
      expect(error.message).toMatch(/^steadfast\.config\.json: cannot read config file: EISDIR/);
    });

    it('names the file and the JSON error on invalid JSON', () => {
      writeFileSync(join(dir.path, 'steadfast.config.json'), '{\n  "port": 4000,\n}\n');
      const error = configError(() => load());
      expect(error.message).toMatch(/^steadfast\.config\.json: invalid JSON: .+/);
      expect(error.message).toMatch(/line 3 column 1/);
      expect(error.cause).toBeInstanceOf(SyntaxError);
    });

    it('names a file given by path with that path', () => {
      writeFileSync(join(dir.path, 'broken.json'), 'port = 4000');
      const error = configError(() => load({ flags: { config: 'broken.json' } }));
      expect(error.message).toMatch(/^broken\.json: invalid JSON: /);
    });

    it('rejects a file whose top level is not an object', () => {
      writeJson('steadfast.config.json', [{ port: 1 }]);
      expect(configError(() => load()).message).toBe(
        'steadfast.config.json: expected a JSON object at the top level, got an array',
      );
    });

    it('accepts a byte-order mark', () => {
      writeFileSync(join(dir.path, 'steadfast.config.json'), '\ufeff{"port": 4010}');
      expect(load().port).toBe(4010);
    });

    it('rejects unknown keys with their path and the file', () => {
      writeJson('steadfast.config.json', { port: 4000, rateLimit: { perIp: { burts: 1 } }, prot: 1 });
      const error = configError(() => load());
      expect(error.message.split('\n')).toEqual([
        'steadfast.config.json: rateLimit.perIp.burts: unknown option',
        'steadfast.config.json: prot: unknown option',
      ]);
      expect(error.issues).toHaveLength(2);
      expect(error.path).toBe('rateLimit.perIp.burts');
    });

    it('names bad destination values by index', () => {
      writeJson('steadfast.config.json', {
        destinations: [
          { name: 'audit', kind: 'audit-log' },
          { name: 'hook', kind: 'http', url: 'not a url' },
        ],
      });
      expect(configError(() => load()).message).toBe(
        'steadfast.config.json: destinations.1.url: Invalid URL: expected an absolute http:// or https:// URL',
      );
    });

    it('rejects duplicate destination names, naming the duplicate', () => {
      writeJson('steadfast.config.json', {
        destinations: [
          { name: 'audit', kind: 'audit-log' },
          { name: 'audit', kind: 'http', url: 'https://example.com' },
        ],
      });
      expect(configError(() => load()).message).toBe(
        'steadfast.config.json: destinations.1.name: duplicate destination name "audit"',
      );
    });
  });

  describe('precedence: defaults < file < environment < flags', () => {
    const file = {
      port: 4000,
      host: '127.0.0.1',
      dataDir: 'file-data',
      logLevel: 'warn',
      hmacSecrets: [SECRET_A],
      adminToken: 'file-admin-token-000000',
      maxBatchEvents: 50,
    };
    const env = {
      STEADFAST_PORT: '5000',
      STEADFAST_HOST: '10.0.0.1',
      STEADFAST_DATA_DIR: 'env-data',
      STEADFAST_LOG_LEVEL: 'debug',
      STEADFAST_HMAC_SECRETS: `${SECRET_B}, ${SECRET_C}`,
      STEADFAST_ADMIN_TOKEN: 'env-admin-token-1111111',
    };
    const flags = { port: '6000', host: '::1', data: 'flag-data', logLevel: 'trace' };

    it('the file beats the defaults', () => {
      writeJson('steadfast.config.json', file);
      expect(load()).toMatchObject({ ...file, dataDir: join(dir.path, 'file-data') });
    });

    it('the environment beats the file, key by key', () => {
      writeJson('steadfast.config.json', file);
      expect(load({ env })).toMatchObject({
        port: 5000,
        host: '10.0.0.1',
        dataDir: join(dir.path, 'env-data'),
        logLevel: 'debug',
        hmacSecrets: [SECRET_B, SECRET_C],
        adminToken: 'env-admin-token-1111111',
        maxBatchEvents: 50,
      });
    });

    it('STEADFAST_DATABASE_URL and STEADFAST_REDIS_URL switch the store and dispatch, keeping the file settings', () => {
      writeJson('steadfast.config.json', {
        storage: { kind: 'postgres', url: 'postgres://file/db', schema: 'events' },
      });
      const config = load({
        env: { STEADFAST_DATABASE_URL: 'postgres://env/db', STEADFAST_REDIS_URL: 'redis://env:6379' },
      });
      expect(config.storage).toMatchObject({ kind: 'postgres', url: 'postgres://env/db', schema: 'events' });
      expect(config.dispatch).toMatchObject({ kind: 'redis', url: 'redis://env:6379', prefix: 'steadfast' });
      writeJson('steadfast.config.json', {});
      expect(configError(() => load({ env: { STEADFAST_REDIS_URL: 'redis://env:6379' } })).message).toContain(
        'redis dispatch needs postgres storage',
      );
      expect(configError(() => load({ env: { STEADFAST_DATABASE_URL: 'http://nope' } })).message).toContain(
        'STEADFAST_DATABASE_URL',
      );
    });

    it('flags beat the environment and the file, key by key', () => {
      writeJson('steadfast.config.json', file);
      expect(load({ env, flags })).toMatchObject({
        port: 6000,
        host: '::1',
        dataDir: join(dir.path, 'flag-data'),
        logLevel: 'trace',
        hmacSecrets: [SECRET_B, SECRET_C],
        adminToken: 'env-admin-token-1111111',
        maxBatchEvents: 50,
      });
    });

    it('a source that leaves a key unset does not hide a lower one', () => {
      writeJson('steadfast.config.json', { port: 4000 });
      const config = load({ env: { STEADFAST_HOST: 'h.example' }, flags: { logLevel: 'error' } });
      expect(config).toMatchObject({ port: 4000, host: 'h.example', logLevel: 'error' });
    });

    it('treats empty environment variables as unset', () => {
      writeJson('steadfast.config.json', { port: 4000, hmacSecrets: [SECRET_A] });
      const config = load({
        env: {
          STEADFAST_PORT: '',
          STEADFAST_HMAC_SECRETS: '',
          STEADFAST_ADMIN_TOKEN: '',
          STEADFAST_CONFIG: '',
        },
      });
      expect(config.port).toBe(4000);
      expect(config.hmacSecrets).toEqual([SECRET_A]);
      expect(config.adminToken).toBeUndefined();
    });

    it('ignores environment variables that are not its own', () => {
      const config = load({
        env: { STEADFAST_DATABASE_URL: 'postgres://x', STEADFAST_REDIS_URL: 'redis://x', PORT: '1' },
      });
      expect(config.port).toBe(3000);
    });
  });

  describe('environment and flag values', () => {
    it.each([
      [{ STEADFAST_PORT: 'abc' }, 'STEADFAST_PORT: expected an integer, got "abc"'],
      [{ STEADFAST_PORT: '80.5' }, 'STEADFAST_PORT: expected an integer, got "80.5"'],
      [{ STEADFAST_PORT: ' 80' }, 'STEADFAST_PORT: expected an integer, got " 80"'],
      [{ STEADFAST_PORT: '1e3' }, 'STEADFAST_PORT: expected an integer, got "1e3"'],
      [{ STEADFAST_PORT: '-1' }, 'STEADFAST_PORT: expected an integer, got "-1"'],
      [
        { STEADFAST_HMAC_SECRETS: ' , ,' },
        'STEADFAST_HMAC_SECRETS: expected a comma-separated list, got " , ,"',
      ],
    ])('rejects %j', (env, message) => {
      expect(configError(() => load({ env })).message).toBe(message);
    });

    it('names the environment variable when the schema rejects its value', () => {
      expect(configError(() => load({ env: { STEADFAST_PORT: '70000' } })).message).toBe(
        'STEADFAST_PORT: port: Too big: expected number to be <=65535',
      );
      expect(configError(() => load({ env: { STEADFAST_LOG_LEVEL: 'loud' } })).message).toMatch(
        /^STEADFAST_LOG_LEVEL: logLevel: Invalid option/,
      );
      expect(configError(() => load({ env: { STEADFAST_HMAC_SECRETS: `${SECRET_A},short` } })).message).toBe(
        'STEADFAST_HMAC_SECRETS: hmacSecrets.1: must be at least 16 characters',
      );
      expect(configError(() => load({ env: { STEADFAST_ADMIN_TOKEN: 'short' } })).message).toBe(
        'STEADFAST_ADMIN_TOKEN: adminToken: must be at least 16 characters',
      );
    });

    it('names the flag when its value is bad', () => {
      expect(configError(() => load({ flags: { port: 'abc' } })).message).toBe(
        '--port: expected an integer, got "abc"',
      );
      expect(configError(() => load({ flags: { port: '99999' } })).message).toBe(
        '--port: port: Too big: expected number to be <=65535',
      );
      expect(configError(() => load({ flags: { logLevel: 'loud' } })).message).toMatch(
        /^--log-level: logLevel: Invalid option/,
      );
      expect(configError(() => load({ flags: { host: '' } })).message).toMatch(/^--host: host: Too small/);
      expect(configError(() => load({ flags: { config: '' } })).message).toBe(
        '--config: expected a file path, got ""',
      );
    });

    it('a good flag fixes a bad environment value below it', () => {
      expect(load({ env: { STEADFAST_LOG_LEVEL: 'loud' }, flags: { logLevel: 'warn' } }).logLevel).toBe(
        'warn',
      );
    });

    it('names each problem by the source it came from', () => {
      writeJson('steadfast.config.json', { maxBatchEvents: 0 });
      const error = configError(() => load({ env: { STEADFAST_PORT: '70000' } }));
      expect(error.issues.map((issue) => `${issue.source} ${issue.path}`)).toEqual([
        'STEADFAST_PORT port',
        'steadfast.config.json maxBatchEvents',
      ]);
    });
  });
});
