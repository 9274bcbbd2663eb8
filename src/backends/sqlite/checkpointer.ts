import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { WriterLock } from './writer-lock.js';

/**
 * The checkpointer's thread: its own connection with `synchronous=FULL`, so each checkpoint
 * syncs the WAL before copying it and the database file before the WAL may be reused. Written
 * as a script (not a module file) so it runs the same from sources and from the build.
 *
 * Each tick runs a PASSIVE checkpoint (no lock: the writer goes on committing). Under steady
 * load that never lets the WAL start over: SQLite rewinds it only when a write transaction
 * begins on a fully copied log, and with commits a millisecond apart one always lands first. So
 * once the log holds `restartFrames` pages, the thread runs a second PASSIVE pass (it copies
 * what was committed during the first), takes the WriterLock (see writer-lock.ts) and runs a
 * RESTART checkpoint: only the few frames committed since are left to copy (under 64
 * producers the lock is held 1.7 ms at the median and 4 ms at most, against 8 and 15 ms after
 * one pass), and the next commit writes from the start of the file again, over blocks the file
 * already has. A file grown past `walLimitBytes` (a burst, a long reader) is cut back to nothing
 * (TRUNCATE) instead. Another process's reader can keep the log from rewinding: the thread then
 * gives up after `restartBusyMs` and tries again on the next tick.
 */
const WORKER_SOURCE = `
const { statSync } = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const FREE = 0, WRITER = 1, CHECKPOINTER = 2;
const slot = new Int32Array(workerData.lock);
const db = new Database(workerData.path, { timeout: workerData.busyTimeoutMs });
db.pragma('synchronous = FULL');
db.pragma('wal_autocheckpoint = 0');
db.pragma('busy_timeout = ' + workerData.restartBusyMs);
const walPath = workerData.path + '-wal';
let running = true;
const walBytes = () => {
  try {
    return statSync(walPath).size;
  } catch {
    return 0;
  }
};
const restart = () => {
  // A second pass copies what was committed during the first, so the locked one has little left.
  db.pragma('wal_checkpoint(PASSIVE)');
  while (Atomics.compareExchange(slot, 0, FREE, CHECKPOINTER) !== FREE) Atomics.wait(slot, 0, WRITER, 50);
  try {
    const mode = walBytes() > workerData.walLimitBytes ? 'TRUNCATE' : 'RESTART';
    db.pragma('wal_checkpoint(' + mode + ')');
  } finally {
    Atomics.store(slot, 0, FREE);
    Atomics.notify(slot, 0);
  }
};
const tick = () => {
  if (!running) return;
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    if (result.log >= workerData.restartFrames && result.checkpointed === result.log) restart();
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
  /** Shared with the store's WriteQueue: the checkpointer holds it while it rewinds the WAL. */
  readonly lock: WriterLock;
  /** WAL size (pages) from which a tick also rewinds the log. */
  readonly restartFrames: number;
  /** A WAL file larger than this is truncated when rewound. */
  readonly walLimitBytes: number;
  /** How long a rewind waits for readers (and other processes' writers) before giving up. */
  readonly restartBusyMs: number;
  /** Told when the thread fails; the store then checkpoints on its own connection again. */
  readonly onFailure: (error: Error) => void;
}

/**
 * Copies the WAL back into the database file on a thread of its own, every `intervalMs` (default
 * 500 ms), and rewinds the log once it has grown (see the script above). The writer connection
 * has automatic checkpoints turned off, so the event loop never waits for the database file's
 * fsync; a rewind holds its commits back for a few milliseconds without blocking the loop.
 */
export class Checkpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  private hasExited = false;
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
        lock: options.lock.buffer,
        restartFrames: options.restartFrames,
        walLimitBytes: options.walLimitBytes,
        restartBusyMs: options.restartBusyMs,
      },
    });
    this.worker.unref();
    this.exited = new Promise<void>((resolve) => {
      this.worker.once('exit', (code) => {
        this.hasExited = true;
        resolve();
        if (!this.stopped) this.fail(new Error(`the checkpointer thread exited with code ${code}`));
      });
    });
    this.worker.on('message', (message: { type: string; message?: string }) => {
      if (message.type === 'error') this.fail(new Error(`checkpoint failed: ${message.message}`));
    });
    this.worker.on('error', (error: unknown) => this.fail(asError(error)));
  }

  /** Stops the thread and closes its connection (at once if it has already exited). */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      if (!this.hasExited) {
        // Held open until it has exited, or a process with nothing else to do would end first.
        this.worker.ref();
        this.worker.postMessage('stop');
      }
      await this.exited;
    })();
    return this.stopped;
  }

  /**
   * Tells the store, then ends the thread: the store checkpoints by itself from now on. Once the
   * thread is gone the writer lock is freed, even if the thread died holding it, so a commit
   * waiting for it goes on.
   */
  private fail(error: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.options.onFailure(error);
    void this.stop().then(() => this.options.lock.forceRelease());
  }
}

/** A thread's uncaught error arrives cloned: an SQLite error keeps its `code` but not its message. */
function asError(error: unknown): Error {
  if (error instanceof Error && error.message) return error;
  const code = (error as { code?: unknown } | null)?.code;
  return new Error(`the checkpointer thread failed${typeof code === 'string' ? ` (${code})` : ''}`, {
    cause: error,
  });
}
