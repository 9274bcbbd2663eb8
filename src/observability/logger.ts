import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Secrets and signatures never reach a log line. */
export const REDACT_PATHS = [
  'authorization',
  'req.headers.authorization',
  'req.headers["x-hmac-signature"]',
  'req.headers["webhook-signature"]',
  '*.secret',
  '*.password',
  '*.token',
];

/**
 * `logger` option of the processor: a pino logger of your own, `false` for silence, or pino
 * options (default level `info`, JSON to stdout).
 */
export type LoggerOption = Logger | LoggerOptions | false | undefined;

function isLogger(value: LoggerOption): value is Logger {
  return typeof value === 'object' && value !== null && typeof (value as Logger).child === 'function';
}

export function createLogger(option: LoggerOption): Logger {
  if (option === false) return pino({ enabled: false });
  if (isLogger(option)) return option;
  return pino({ name: 'steadfast', level: 'info', redact: REDACT_PATHS, ...option });
}
