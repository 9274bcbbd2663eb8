import type { SqliteDatabase } from './database.js';

/**
 * Notices commits made by OTHER processes on the same file. `PRAGMA data_version` changes
 * whenever another connection commits; reading it costs microseconds, so it is polled often.
 */
export class ChangeWatcher {
  private timer: NodeJS.Timeout | null = null;
  private lastVersion = 0;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly intervalMs: number,
    private readonly onChange: () => void,
  ) {}

  start(): void {
    if (this.timer) return;
    this.lastVersion = this.read();
    this.timer = setInterval(() => this.poll(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private read(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  private poll(): void {
    let version: number;
    try {
      version = this.read();
    } catch {
      return; // the database is closing; the next poll (if any) tries again
    }
    if (version !== this.lastVersion) {
      this.lastVersion = version;
      this.onChange();
    }
  }
}
