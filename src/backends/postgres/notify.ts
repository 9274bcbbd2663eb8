import pg from 'pg';
import type { Database } from './database.js';
import { clientConfig } from './database.js';
import { prepared } from './statements.js';

const NOTIFY = prepared(`SELECT pg_notify($1, $2)`);

/** What goes over the channel: who wrote, and which destinations may have work (or all). */
interface WorkMessage {
  readonly o: string;
  readonly d: readonly string[] | 'all';
}

/** NOTIFY payloads must stay under 8000 bytes; past this, the message says "all". */
const MAX_PAYLOAD_CHARS = 7000;

/** The NOTIFY payload saying that these destinations (or all) may have work, written by `origin`. */
export function workPayload(origin: string, destinations: readonly string[] | 'all'): string {
  const payload = JSON.stringify({ o: origin, d: destinations } satisfies WorkMessage);
  return payload.length > MAX_PAYLOAD_CHARS
    ? JSON.stringify({ o: origin, d: 'all' } satisfies WorkMessage)
    : payload;
}

/** The channel of a schema: one per store, so stores sharing a database do not wake each other. */
export function channelOf(schema: string): string {
  return `steadfast_${schema}`;
}

/**
 * Tells other processes that destinations may have work. Destinations touched during one
 * event-loop turn go out as one NOTIFY after their commits. The rows themselves are the record: a
 * notification lost because the store failed is made up for by an "all" once it answers again
 * (`touchAll`, called by the backend when the store recovers).
 */
export class WorkNotifier {
  private pending = new Set<string>();
  /** The next message says "all", whatever `pending` holds. */
  private all = false;
  private scheduled = false;

  constructor(
    private readonly db: Database,
    private readonly channel: string,
    private readonly origin: string,
  ) {}

  touch(destinations: readonly string[]): void {
    if (destinations.length === 0) return;
    for (const name of destinations) this.pending.add(name);
    this.schedule();
  }

  /** Tells other processes that any destination may have work (after the store came back). */
  touchAll(): void {
    this.all = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const names = [...this.pending];
      const all = this.all;
      this.pending.clear();
      this.all = false;
      const payload = workPayload(this.origin, all ? 'all' : names);
      this.db.run('notify', (sql) => sql.query(NOTIFY, [this.channel, payload])).catch(() => undefined);
    });
  }
}

export interface ListenerOptions {
  readonly connectionString: string;
  readonly schema: string;
  readonly channel: string;
  /** This process's origin id: its own messages are skipped (local listeners heard them already). */
  readonly origin: string;
  readonly onWork: (destinations: readonly string[] | 'all') => void;
  /** First pause before reconnecting; doubled up to `maxReconnectDelayMs`. default 100 */
  readonly reconnectDelayMs?: number;
  /** default 5000 */
  readonly maxReconnectDelayMs?: number;
}

/**
 * A dedicated connection LISTENing on the store's channel. When it drops it reconnects with
 * doubling pauses, and once back reports 'all' (notifications sent meanwhile are lost).
 */
export class WorkListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private connecting: Promise<void> | null = null;
  private connections = 0;

  constructor(private readonly options: ListenerOptions) {}

  /** Times a LISTEN connection was established (the first included). */
  get connected(): number {
    return this.connections;
  }

  /** Resolves after the first connection attempt, whether or not it worked (it keeps trying). */
  start(): Promise<void> {
    this.connecting ??= this.connect();
    return this.connecting;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.connecting;
    const client = this.client;
    this.client = null;
    if (client) await client.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(clientConfig(this.options));
    let dropped = false;
    const drop = () => {
      if (dropped) return;
      dropped = true;
      if (this.client === client) this.client = null;
      client.end().catch(() => undefined);
      this.reconnectLater();
    };
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', (message) => {
      if (message.channel === this.options.channel) this.receive(message.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.options.channel)}`);
    } catch {
      drop();
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.connections += 1;
    const reconnected = this.failures > 0;
    this.failures = 0;
    if (reconnected) this.options.onWork('all');
  }

  private reconnectLater(): void {
    if (this.stopped || this.timer) return;
    const base = this.options.reconnectDelayMs ?? 100;
    const delay = Math.min(base * 2 ** this.failures, this.options.maxReconnectDelayMs ?? 5000);
    this.failures += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      this.connecting = this.connect();
    }, delay);
    this.timer.unref();
  }

  private receive(payload: string | undefined): void {
    let message: WorkMessage;
    try {
      message = JSON.parse(payload ?? '') as WorkMessage;
    } catch {
      this.options.onWork('all');
      return;
    }
    if (message.o === this.options.origin) return;
    this.options.onWork(message.d === 'all' || !Array.isArray(message.d) ? 'all' : message.d);
  }
}
