import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { REDACT_PATHS } from '../observability/logger.js';

/** JSON lines, or readable lines when stdout is a terminal; secrets and signatures redacted. */
export function serviceLogger(level: string): Logger {
  const options = { name: 'steadfast', level, redact: REDACT_PATHS };
  return process.stdout.isTTY
    ? pino(options, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l' }))
    : pino(options);
}
