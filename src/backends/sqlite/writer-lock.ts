/** Who holds the lock, in its one shared slot. */
export const FREE = 0;
export const WRITER = 1;
export const CHECKPOINTER = 2;

type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };

// Atomics.waitAsync is in Node since 16; TypeScript's ES2023 library does not declare it yet.
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * Keeps the store's writer and its checkpointer thread from needing SQLite's write lock at the
 * same moment, without the event loop ever sleeping in SQLite's busy handler. The writer takes
 * it around each group commit (one synchronous call, so it is never held across turns of the
 * loop); the checkpointer thread takes it for the short checkpoint that restarts the WAL, and
 * blocks (on its own thread) while a commit runs. A writer that finds the checkpointer holding
 * it waits with `Atomics.waitAsync`, so the loop goes on serving meanwhile.
 *
 * One `SharedArrayBuffer` slot holds FREE, WRITER or CHECKPOINTER; the thread side is written
 * out in the checkpointer's script.
 */
export class WriterLock {
  readonly buffer: SharedArrayBuffer;
  private readonly slot: Int32Array;

  constructor() {
    this.buffer = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
    this.slot = new Int32Array(this.buffer);
  }

  /** Takes the lock for the writer if it is free. */
  tryAcquire(): boolean {
    return Atomics.compareExchange(this.slot, 0, FREE, WRITER) === FREE;
  }

  /** Gives the writer's hold back and wakes the checkpointer if it waits. */
  release(): void {
    Atomics.store(this.slot, 0, FREE);
    Atomics.notify(this.slot, 0);
  }

  /**
   * Frees the lock whoever holds it: for when the checkpointer thread has ended (it may have
   * died holding it). Never call it while a commit may be running.
   */
  forceRelease(): void {
    this.release();
  }

  /** Resolves once the checkpointer no longer holds the lock (at once if it does not). */
  async whenFree(): Promise<void> {
    while (Atomics.load(this.slot, 0) === CHECKPOINTER) {
      const wait = waitAsync(this.slot, 0, CHECKPOINTER);
      if (wait.async) await wait.value;
    }
  }
}
