import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { tempDir } from '../../test/support/temp-dir.js';
import { ConfigError } from './config-error.js';
import { ensureServiceSecrets, readServiceSecrets } from './secrets.js';

const NONE = { hmacSecrets: [], adminToken: undefined };

/**
 * `readFileSync` passes through, except that a test can make "another process" create a file
 * right after this one found it missing: the race `ensureServiceSecrets` must survive.
 */
const race = vi.hoisted(() => ({ onMissing: undefined as ((path: string) => void) | undefined }));
vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs')>();
  const read = actual.readFileSync as (...args: unknown[]) => unknown;
  const readFileSync = (...args: unknown[]): unknown => {
    try {
      return read(...args);
    } catch (error) {
      const hook = race.onMissing;
      race.onMissing = undefined;
      if ((error as { code?: unknown }).code === 'ENOENT') hook?.(String(args[0]));
      throw error;
    }
  };
  return { ...actual, readFileSync, default: { ...actual, readFileSync } };
});
afterEach(() => {
  race.onMissing = undefined;
});

let dir: ReturnType<typeof tempDir>;
let dataDir: string;
beforeEach(() => {
  dir = tempDir('steadfast-secrets-');
  dataDir = join(dir.path, 'nested', 'data'); // does not exist yet
});
afterEach(() => dir.remove());

describe('ensureServiceSecrets', () => {
  it('generates both secrets into a new data folder when none is configured', () => {
    const secrets = ensureServiceSecrets(dataDir, NONE);

    expect(secrets.hmacSecrets).toHaveLength(1);
    const [hmac] = secrets.hmacSecrets;
    expect(hmac).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(hmac!.slice('whsec_'.length), 'base64')).toHaveLength(32);
    expect(secrets.adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secrets.adminToken, 'base64url')).toHaveLength(32);

    expect(secrets.generated).toEqual({
      hmacSecret: join(dataDir, 'hmac-secret'),
      adminToken: join(dataDir, 'admin-token'),
    });
    expect(readFileSync(join(dataDir, 'hmac-secret'), 'utf8').trim()).toBe(hmac);
    expect(readFileSync(join(dataDir, 'admin-token'), 'utf8').trim()).toBe(secrets.adminToken);
    expect(readdirSync(dataDir).sort()).toEqual(['admin-token', 'hmac-secret']); // no temporary files left
  });

  it.skipIf(process.platform === 'win32')('writes the files with mode 0600', () => {
    ensureServiceSecrets(dataDir, NONE);
    expect(statSync(join(dataDir, 'hmac-secret')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'admin-token')).mode & 0o777).toBe(0o600);
  });

  it('generates once, then reuses what is on disk', () => {
    const first = ensureServiceSecrets(dataDir, NONE);
    const second = ensureServiceSecrets(dataDir, NONE);
    expect(second.hmacSecrets).toEqual(first.hmacSecrets);
    expect(second.adminToken).toBe(first.adminToken);
    expect(second.generated).toEqual({});
  });

  it('generates different secrets in different data folders', () => {
    const a = ensureServiceSecrets(join(dir.path, 'a'), NONE);
    const b = ensureServiceSecrets(join(dir.path, 'b'), NONE);
    expect(a.hmacSecrets).not.toEqual(b.hmacSecrets);
    expect(a.adminToken).not.toBe(b.adminToken);
    expect(a.hmacSecrets[0]).not.toBe(a.adminToken);
  });

  it('adopts the secret of a process that created the file first', () => {
    mkdirSync(dataDir, { recursive: true });
    const winner = 'whsec_written-by-the-other-process';
    race.onMissing = (path) => writeFileSync(path, `${winner}\n`, { mode: 0o600 });

    const secrets = ensureServiceSecrets(dataDir, NONE);
    expect(secrets.hmacSecrets).toEqual([winner]);
    expect(secrets.generated).toEqual({ adminToken: join(dataDir, 'admin-token') });
    expect(readFileSync(join(dataDir, 'hmac-secret'), 'utf8')).toBe(`${winner}\n`);
    expect(readdirSync(dataDir).sort()).toEqual(['admin-token', 'hmac-secret']); // no temporary files left
  });

  it('uses configured secrets and touches nothing on disk', () => {
    const configured = {
      hmacSecrets: ['configured-secret-1234', 'older-secret-5678901'],
      adminToken: 'x'.repeat(32),
    };
    const secrets = ensureServiceSecrets(dataDir, configured);
    expect(secrets).toEqual({ ...configured, generated: {} });
    expect(existsSync(dataDir)).toBe(false);
  });

  it('fills in only the secret that is not configured', () => {
    const onlyToken = ensureServiceSecrets(dataDir, { hmacSecrets: [], adminToken: 'y'.repeat(32) });
    expect(onlyToken.adminToken).toBe('y'.repeat(32));
    expect(onlyToken.generated).toEqual({ hmacSecret: join(dataDir, 'hmac-secret') });
    expect(existsSync(join(dataDir, 'admin-token'))).toBe(false);

    const onlyHmac = ensureServiceSecrets(dataDir, { hmacSecrets: ['configured-secret-1234'] });
    expect(onlyHmac.hmacSecrets).toEqual(['configured-secret-1234']);
    expect(onlyHmac.generated).toEqual({ adminToken: join(dataDir, 'admin-token') });
  });

  it('reuses a secret an operator wrote by hand, surrounding whitespace dropped', () => {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, 'hmac-secret'), '  my-own-hand-written-secret\n');
    const secrets = ensureServiceSecrets(dataDir, NONE);
    expect(secrets.hmacSecrets).toEqual(['my-own-hand-written-secret']);
    expect(secrets.generated).toEqual({ adminToken: join(dataDir, 'admin-token') });
  });

  it('refuses an empty or too short secret file instead of replacing it', () => {
    mkdirSync(dataDir, { recursive: true });
    const path = join(dataDir, 'admin-token');
    writeFileSync(path, '\n');
    expect(() => ensureServiceSecrets(dataDir, NONE)).toThrow(ConfigError);
    expect(() => ensureServiceSecrets(dataDir, NONE)).toThrow(
      `${path}: secret file must hold at least 16 characters (delete it to generate a new one)`,
    );
    expect(readFileSync(path, 'utf8')).toBe('\n');
  });

  it('reports a secret path it cannot read', () => {
    mkdirSync(join(dataDir, 'hmac-secret'), { recursive: true });
    expect(() => ensureServiceSecrets(dataDir, NONE)).toThrow(/hmac-secret: cannot read secret file: EISDIR/);
  });
});

describe('readServiceSecrets', () => {
  it('answers nulls for a data folder without secrets, and creates nothing', () => {
    expect(readServiceSecrets(dataDir)).toEqual({ hmacSecret: null, adminToken: null });
    expect(existsSync(dataDir)).toBe(false);
  });

  it('answers what the files hold', () => {
    const generated = ensureServiceSecrets(dataDir, NONE);
    expect(readServiceSecrets(dataDir)).toEqual({
      hmacSecret: generated.hmacSecrets[0],
      adminToken: generated.adminToken,
    });
  });

  it('answers a null for the one file that is missing', () => {
    ensureServiceSecrets(dataDir, { hmacSecrets: ['configured-secret-1234'] });
    const stored = readServiceSecrets(dataDir);
    expect(stored.hmacSecret).toBeNull();
    expect(stored.adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
