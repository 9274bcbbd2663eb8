import type { z } from 'zod';
import { SteadfastError } from '../errors.js';

/** One problem found in the service configuration. */
export interface ConfigIssue {
  /**
   * Where the bad value came from: a config file as it was named (`steadfast.config.json`),
   * an environment variable (`STEADFAST_PORT`), a CLI flag (`--port`), or a secret file's path.
   */
  readonly source: string;
  /** Dotted key path inside the configuration (`destinations.1.url`); empty when not about one key. */
  readonly path: string;
  readonly message: string;
}

function formatIssue(issue: ConfigIssue): string {
  return [issue.source, issue.path, issue.message].filter((part) => part !== '').join(': ');
}

/**
 * The service configuration is invalid or could not be read. The message names, for every
 * problem, the source and the key path, e.g. `steadfast.config.json: destinations.1.url: Invalid URL`
 * or `STEADFAST_PORT: expected an integer, got "abc"` (one problem per line).
 */
export class ConfigError extends SteadfastError {
  readonly code = 'config_error';
  /** Every problem found, in the order they were found (at least one). */
  readonly issues: readonly ConfigIssue[];

  constructor(issues: ConfigIssue | readonly ConfigIssue[], options?: { cause?: unknown }) {
    const list: readonly ConfigIssue[] = 'message' in issues ? [issues] : issues;
    const all = list.length > 0 ? list : [{ source: '(config)', path: '', message: 'invalid configuration' }];
    super(all.map(formatIssue).join('\n'), options);
    this.issues = all;
  }

  /** Source of the first problem. */
  get source(): string {
    return this.issues[0]?.source ?? '';
  }

  /** Key path of the first problem. */
  get path(): string {
    return this.issues[0]?.path ?? '';
  }
}

/**
 * Turns zod issues into config issues. An unknown key is reported at its own path
 * (`rateLimit.perIp.burts: unknown option`); `sourceOf` tells where the value at a path came from.
 */
export function configIssuesFromZod(
  error: z.ZodError,
  sourceOf: (path: readonly PropertyKey[]) => string,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const path = [...issue.path, key];
        issues.push({ source: sourceOf(path), path: path.map(String).join('.'), message: 'unknown option' });
      }
      continue;
    }
    // A bad record key (a header name) carries the reason in its nested issues.
    const message =
      issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
    issues.push({ source: sourceOf(issue.path), path: issue.path.map(String).join('.'), message });
  }
  return issues;
}
