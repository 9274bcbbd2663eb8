import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError, configIssuesFromZod, type ConfigIssue } from './config-error.js';
import { configSchema, type SteadfastConfig } from './schema.js';

/** Name of the config file looked for in the working directory when none is named. */
export const DEFAULT_CONFIG_FILE = 'steadfast.config.json';

/** CLI flags that override the configuration, as commander hands them over (strings). */
export interface ConfigFlags {
  /** `--port` → `port` */
  readonly port?: string | undefined;
  /** `--host` → `host` */
  readonly host?: string | undefined;
  /** `--data` → `dataDir` */
  readonly data?: string | undefined;
  /** `--config` → the config file to read */
  readonly config?: string | undefined;
  /** `--log-level` → `logLevel` */
  readonly logLevel?: string | undefined;
}

/** Inputs of `loadConfig`; everything is injectable so tests never touch the real process. */
export interface LoadConfigOptions {
  /** Parsed CLI flags. default `{}` */
  readonly flags?: ConfigFlags;
  /** Environment variables. default `process.env` */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths are resolved against. default `process.cwd()` */
  readonly cwd?: string;
}

type TopKey = keyof SteadfastConfig;

/** A value set from the environment or a flag, with the label errors name it by. */
interface Override {
  readonly key: TopKey;
  readonly value: unknown;
  readonly source: string;
}

const INTEGER = /^(0|[1-9][0-9]*)$/;

function fail(source: string, message: string, cause?: unknown): never {
  throw new ConfigError({ source, path: '', message }, cause === undefined ? undefined : { cause });
}

function parseInteger(raw: string, source: string): number {
  const value = Number(raw);
  if (!INTEGER.test(raw) || !Number.isSafeInteger(value)) {
    fail(source, `expected an integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Comma-separated list; blanks around entries are dropped, an all-empty list is an error. */
function parseList(raw: string, source: string): string[] {
  const items = raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  if (items.length === 0) fail(source, `expected a comma-separated list, got ${JSON.stringify(raw)}`);
  return items;
}

/** An unset or empty environment variable counts as not set. */
function envValue(env: LoadConfigOptions['env'], name: string): string | undefined {
  const value = env?.[name];
  return value === undefined || value === '' ? undefined : value;
}

function envOverrides(env: LoadConfigOptions['env']): Override[] {
  const overrides: Override[] = [];
  const add = (name: string, key: TopKey, parse: (raw: string, source: string) => unknown = (raw) => raw) => {
    const raw = envValue(env, name);
    if (raw !== undefined) overrides.push({ key, value: parse(raw, name), source: name });
  };
  add('STEADFAST_PORT', 'port', parseInteger);
  add('STEADFAST_HOST', 'host');
  add('STEADFAST_DATA_DIR', 'dataDir');
  add('STEADFAST_HMAC_SECRETS', 'hmacSecrets', parseList);
  add('STEADFAST_ADMIN_TOKEN', 'adminToken');
  add('STEADFAST_LOG_LEVEL', 'logLevel');
  return overrides;
}

function flagOverrides(flags: ConfigFlags): Override[] {
  const overrides: Override[] = [];
  const add = (
    raw: string | undefined,
    flag: string,
    key: TopKey,
    parse: (raw: string, source: string) => unknown = (value) => value,
  ) => {
    if (raw !== undefined) overrides.push({ key, value: parse(raw, flag), source: flag });
  };
  add(flags.port, '--port', 'port', parseInteger);
  add(flags.host, '--host', 'host');
  add(flags.data, '--data', 'dataDir');
  add(flags.logLevel, '--log-level', 'logLevel');
  return overrides;
}

/** The config file to read, and the label errors name it by; `required` when it was named. */
interface ConfigFile {
  readonly path: string;
  readonly label: string;
  readonly required: boolean;
}

function chooseConfigFile(flags: ConfigFlags, env: LoadConfigOptions['env'], cwd: string): ConfigFile {
  if (flags.config !== undefined) {
    if (flags.config === '') fail('--config', 'expected a file path, got ""');
    return { path: resolve(cwd, flags.config), label: flags.config, required: true };
  }
  const named = envValue(env, 'STEADFAST_CONFIG');
  if (named !== undefined) return { path: resolve(cwd, named), label: named, required: true };
  return { path: resolve(cwd, DEFAULT_CONFIG_FILE), label: DEFAULT_CONFIG_FILE, required: false };
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Adds `line L column C` to a JSON error that only gives a position (Node 20). */
function describeJsonError(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const match = /at position (\d+)/.exec(message);
  if (match === null || /line \d+/.test(message)) return message;
  const before = text.slice(0, Number(match[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${message} (line ${line} column ${column})`;
}

/** Reads and parses the config file; `undefined` when the default file is absent. */
function readConfigFile(file: ConfigFile, namedBy: string): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(file.path, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') {
      if (!file.required) return undefined;
      fail(namedBy, `config file not found: ${file.path}`, error);
    }
    const reason = error instanceof Error ? error.message : String(error);
    fail(file.label, `cannot read config file: ${reason}`, error);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    fail(file.label, `invalid JSON: ${describeJsonError(error, text)}`, error);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    const got = parsed === null ? 'null' : Array.isArray(parsed) ? 'an array' : typeof parsed;
    fail(file.label, `expected a JSON object at the top level, got ${got}`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Loads the service configuration from, in increasing precedence: the defaults, the config
 * file, the environment and the CLI flags. Each source replaces whole top-level values (a list
 * from the environment replaces the file's list). A relative `dataDir` is resolved against `cwd`.
 *
 * The config file is `--config PATH`, else `STEADFAST_CONFIG`, else `steadfast.config.json` in
 * `cwd` if it exists; a named file that does not exist is an error. Environment variables (an
 * empty one counts as unset): `STEADFAST_PORT`, `STEADFAST_HOST`, `STEADFAST_DATA_DIR`,
 * `STEADFAST_HMAC_SECRETS` (comma-separated), `STEADFAST_ADMIN_TOKEN`, `STEADFAST_LOG_LEVEL`,
 * `STEADFAST_CONFIG`, `STEADFAST_DATABASE_URL` (storage becomes postgres with that URL) and
 * `STEADFAST_REDIS_URL` (dispatch becomes redis with that URL). This is the only place the service reads them.
 *
 * @throws ConfigError naming the source and key path of every problem found.
 */
export function loadConfig(options: LoadConfigOptions = {}): SteadfastConfig {
  const flags = options.flags ?? {};
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();

  const file = chooseConfigFile(flags, env, cwd);
  const namedBy = flags.config !== undefined ? '--config' : 'STEADFAST_CONFIG';
  const fromFile = readConfigFile(file, namedBy);
  const overrides = [...envOverrides(env), ...flagOverrides(flags)];

  const merged: Record<string, unknown> = { ...fromFile };
  const sourceOfKey = new Map<string, string>();
  // The URL variables switch the store / dispatch kind, keeping the file's other settings of it.
  for (const [name, key, kind] of [
    ['STEADFAST_DATABASE_URL', 'storage', 'postgres'],
    ['STEADFAST_REDIS_URL', 'dispatch', 'redis'],
  ] as const) {
    const url = envValue(env, name);
    if (url === undefined) continue;
    const current = merged[key];
    const same =
      typeof current === 'object' && current !== null && (current as { kind?: unknown }).kind === kind;
    merged[key] = { ...(same ? current : {}), kind, url };
    sourceOfKey.set(key, name);
  }
  for (const override of overrides) {
    merged[override.key] = override.value;
    sourceOfKey.set(override.key, override.source);
  }

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const fallback = fromFile === undefined ? '(defaults)' : file.label;
    const sourceOf = (path: readonly PropertyKey[]): string => {
      const top = path[0];
      return (typeof top === 'string' ? sourceOfKey.get(top) : undefined) ?? fallback;
    };
    const issues: ConfigIssue[] = configIssuesFromZod(result.error, sourceOf);
    throw new ConfigError(issues, { cause: result.error });
  }
  const config = result.data;
  return isAbsolute(config.dataDir) ? config : { ...config, dataDir: resolve(cwd, config.dataDir) };
}
