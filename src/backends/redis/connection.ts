import { Redis, type RedisOptions } from 'ioredis';
import { BackendError } from '../../errors.js';
import type { Logger } from '../../observability/logger.js';

/** A command that gets no answer within this time fails (so a dropped connection cannot hang a claim). */
const COMMAND_TIMEOUT_MS = 5000;
/** Longest pause between two reconnection attempts (ioredis keeps trying for ever). */
const MAX_RECONNECT_DELAY_MS = 2000;

export type LinkState = 'up' | 'down';

/**
 * The Redis connection this dispatch layer shares between its BullMQ queues and workers, and
 * whether it can be used right now. Commands fail fast while it is down (no offline queue)
 * instead of waiting for a reconnect, so callers can fall back to the store at once.
 */
export class RedisLink {
  readonly client: Redis;
  private state: LinkState = 'down';
  private lastError: Error | null = null;
  private readonly listeners = new Set<(state: LinkState) => void>();
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly logger: Logger | null,
  ) {
    this.client = new Redis(url, linkOptions());
    this.client.on('error', (error: Error) => {
      this.lastError = error;
    });
    this.client.on('ready', () => this.set('up'));
    this.client.on('close', () => this.set('down'));
    this.client.on('end', () => this.set('down'));
  }

  get up(): boolean {
    return this.state === 'up';
  }

  get error(): Error | null {
    return this.lastError;
  }

  /** Called on every change between up and down. */
  onChange(listener: (state: LinkState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Connects, waiting up to `attempts` × `delayMs` for Redis to answer; fails with a
   * `BackendError` naming the address if it never does.
   */
  async connect(attempts: number, delayMs: number): Promise<void> {
    this.client.connect().catch(() => undefined);
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (await this.waitUp(delayMs)) return;
      if (this.closed) break;
      this.logger?.warn(
        { attempt, attempts, error: this.lastError?.message },
        `Redis at ${redact(this.url)} not reachable yet (attempt ${attempt} of ${attempts})`,
      );
    }
    this.client.disconnect();
    throw new BackendError(
      `Redis at ${redact(this.url)} did not answer after ${attempts} attempts ${delayMs} ms apart` +
        (this.lastError ? `: ${this.lastError.message}` : ''),
      { cause: this.lastError ?? undefined },
    );
  }

  /** A second connection for subscriptions (Redis needs one of its own). */
  duplicate(): Redis {
    const copy = this.client.duplicate();
    copy.on('error', () => undefined);
    return copy;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  private waitUp(timeoutMs: number): Promise<boolean> {
    if (this.up) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        off();
        resolve(this.up);
      }, timeoutMs);
      const off = this.onChange((state) => {
        if (state !== 'up') return;
        clearTimeout(timer);
        off();
        resolve(true);
      });
    });
  }

  private set(state: LinkState): void {
    if (this.state === state) return;
    this.state = state;
    if (state === 'up') this.lastError = null;
    for (const listener of [...this.listeners]) listener(state);
  }
}

function linkOptions(): RedisOptions {
  return {
    lazyConnect: true,
    // BullMQ requires null for connections its workers use (and duplicates for blocking).
    maxRetriesPerRequest: null,
    enableOfflineQueue: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS),
  };
}

/** The URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(invalid url)';
  }
}
