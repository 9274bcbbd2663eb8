import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisLink } from './connection.js';

interface WorkMessage {
  /** The process that enqueued (it has woken its own dispatcher already). */
  readonly o: string;
  /** Destinations that got jobs. */
  readonly d: readonly string[];
}

/**
 * Tells the other processes that jobs were enqueued, after they are in Redis, over one pub/sub
 * channel: their dispatchers wake at once instead of waiting for a timer, and find the jobs there.
 */
export class WorkSignal {
  private readonly origin = randomBytes(8).toString('base64url');
  private subscriber: Redis | null = null;

  constructor(
    private readonly link: RedisLink,
    private readonly channel: string,
    private readonly onWork: (destinations: readonly string[]) => void,
  ) {}

  start(): void {
    if (this.subscriber) return;
    const subscriber = this.link.duplicate();
    this.subscriber = subscriber;
    subscriber.on('message', (_channel: string, message: string) => this.receive(message));
    // ioredis subscribes again by itself after a reconnect.
    subscriber.once('ready', () => void subscriber.subscribe(this.channel).catch(() => undefined));
    subscriber.connect().catch(() => undefined);
  }

  publish(destinations: readonly string[]): void {
    if (destinations.length === 0 || !this.link.up) return;
    const message: WorkMessage = { o: this.origin, d: destinations };
    this.link.client.publish(this.channel, JSON.stringify(message)).catch(() => undefined);
  }

  close(): void {
    this.subscriber?.disconnect();
    this.subscriber = null;
  }

  private receive(raw: string): void {
    let message: Partial<WorkMessage>;
    try {
      message = JSON.parse(raw) as Partial<WorkMessage>;
    } catch {
      return;
    }
    if (message.o === this.origin || !Array.isArray(message.d)) return;
    const destinations = message.d.filter((d): d is string => typeof d === 'string');
    if (destinations.length > 0) this.onWork(destinations);
  }
}
