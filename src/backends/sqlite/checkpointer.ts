import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * The checkpointer's thread: its own connection with `synchronous=FULL`, so each checkpoint
 * syncs the WAL before copying it and the database file before the WAL may be reused. Written
 * as a script (not a module file) so it runs the same from sources and from the build.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { timeout: workerData.busyTimeoutMs });
db.pragma('synchronous = FULL');
db.pragma('wal_autocheckpoint = 0');
let running = true;
const tick = () => {
  if (!running) return;
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (error) {
    parentPort.postMessage({ type: 'error', message: String(error && error.message || error) });
  }
  setTimeout(tick, workerData.intervalMs);
};
parentPort.on('message', (message) => {
  if (message === 'stop') {
    running = false;
    db.close();
    parentPort.postMessage({ type: 'stopped' });
    parentPort.close();
  }
});
setTimeout(tick, workerData.intervalMs);
`;

export interface CheckpointerOptions {
  readonly path: string;
  readonly intervalMs: number;
  readonly busyTimeoutMs: number;
  /** Told when the thread fails; the store then checkpoints on its own connection again. */
  readonly onFailure: (error: Error) => void;
}

/**
 * Copies the WAL back into the database file on a thread of its own, every `intervalMs` (default 500 ms)
 * (PASSIVE: it never waits for the writer or blocks it). The writer connection has automatic
 * checkpoints turned off, so the event loop never waits for the database file's fsync.
 */
export class Checkpointer {
  private readonly worker: Worker;
  private stopped: Promise<void> | null = null;
  private failed = false;

  constructor(private readonly options: CheckpointerOptions) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver,
        path: options.path,
        intervalMs: options.intervalMs,
        busyTimeoutMs: options.busyTimeoutMs,
      },
    });
    this.worker.unref();
    this.worker.on('message', (message: { type: string; message?: string }) => {
      if (message.type === 'error') this.fail(new Error(`checkpoint failed: ${message.message}`));
    });
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => {
      if (!this.stopped) this.fail(new Error(`the checkpointer thread exited with code ${code}`));
    });
  }

  /** Stops the thread and closes its connection. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      // Held open until it has exited, or a process with nothing else to do would end first.
      this.worker.ref();
      this.worker.once('exit', () => resolve());
      this.worker.postMessage('stop');
    });
    return this.stopped;
  }

  private fail(error: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.options.onFailure(error);
  }
}
