import { close, fdatasync, openSync } from 'node:fs';
import { BackendError } from '../../errors.js';

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Makes commits durable without blocking the event loop. The writer connection commits with
 * `synchronous=OFF` (its frames reach the operating system, not yet the disk) and asks this for
 * a sync; `fdatasync` of the WAL file then runs on libuv's thread pool while the loop keeps
 * serving. One sync is in flight at a time: every commit made while it runs waits for the next
 * one, so a busy store pays one fsync per round of commits, however many there were.
 *
 * The WAL is the only file the writer touches (checkpoints run elsewhere, see Checkpointer), so a
 * sync of the WAL covers every commit made before it started.
 */
export class WalSync {
  private fd: number | null = null;
  private active = false;
  private finishWaiters: (() => void)[] = [];
  private waiting: Waiter[] = [];
  private idle: (() => void)[] = [];
  private closed = false;
  private completed = 0;

  constructor(private readonly walPath: string) {}

  /** Resolves once everything committed before the call is on disk. */
  sync(): Promise<void> {
    if (this.closed) return Promise.reject(new BackendError('the store is closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.active) this.start();
    });
  }

  /** A sync is running. */
  get running(): boolean {
    return this.active;
  }

  /** Resolves when the running sync ends (at once if none runs). */
  finished(): Promise<void> {
    if (!this.active) return Promise.resolve();
    return new Promise((resolve) => this.finishWaiters.push(resolve));
  }

  /** fdatasync calls completed so far. */
  get syncs(): number {
    return this.completed;
  }

  /** Syncs still waiting or running. */
  get pending(): number {
    return this.waiting.length + (this.active ? 1 : 0);
  }

  /** Resolves once no sync is waiting or running. */
  drained(): Promise<void> {
    if (!this.active && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Waits for the syncs under way, then releases the file. */
  async close(): Promise<void> {
    await this.drained();
    this.closed = true;
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) await new Promise<void>((resolve) => close(fd, () => resolve()));
  }

  private start(): void {
    const batch = this.waiting;
    this.waiting = [];
    this.active = true;
    let fd: number;
    try {
      fd = this.fd ??= openSync(this.walPath, 'r');
    } catch (error) {
      this.finish(batch, error);
      return;
    }
    fdatasync(fd, (error) => this.finish(batch, error));
  }

  private finish(batch: readonly Waiter[], error: unknown): void {
    this.active = false;
    this.completed += 1;
    if (error) {
      const failure = new BackendError(`the store could not sync its log: ${(error as Error).message}`, {
        cause: error,
      });
      for (const waiter of batch) waiter.reject(failure);
    } else {
      for (const waiter of batch) waiter.resolve();
    }
    const finished = this.finishWaiters;
    this.finishWaiters = [];
    for (const resolve of finished) resolve();
    if (this.waiting.length > 0) {
      this.start();
      return;
    }
    const idle = this.idle;
    this.idle = [];
    for (const resolve of idle) resolve();
  }
}
