/**
 * Outcomes of the calls made in the last `periodMs`: an entry recorded at `t` counts while
 * `now - t < periodMs`. Times are expected to be pushed in order (a clock that steps back only
 * keeps an entry a little longer). Pruning is amortised O(1) per entry.
 */
export class OutcomeWindow {
  private times: number[] = [];
  private failedFlags: boolean[] = [];
  private head = 0;
  private failures = 0;

  constructor(private readonly periodMs: number) {}

  push(now: number, failed: boolean): void {
    this.prune(now);
    this.times.push(now);
    this.failedFlags.push(failed);
    if (failed) this.failures++;
  }

  /** Drops the entries that have left the window at `now`. */
  prune(now: number): void {
    const cutoff = now - this.periodMs;
    while (this.head < this.times.length && (this.times[this.head] ?? 0) <= cutoff) {
      if (this.failedFlags[this.head]) this.failures--;
      this.head++;
    }
    if (this.head === this.times.length) {
      this.clear();
    } else if (this.head >= 1024 && this.head * 2 >= this.times.length) {
      this.times = this.times.slice(this.head);
      this.failedFlags = this.failedFlags.slice(this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.times = [];
    this.failedFlags = [];
    this.head = 0;
    this.failures = 0;
  }

  /** Calls in the window (as of the last push or prune). */
  get calls(): number {
    return this.times.length - this.head;
  }

  /** failures / calls, 0 when empty (as of the last push or prune). */
  get failureRate(): number {
    const calls = this.calls;
    return calls === 0 ? 0 : this.failures / calls;
  }
}
