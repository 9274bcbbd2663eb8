/**
 * Token buckets by key: each key holds up to `burst` tokens and regains `ratePerSec` a second.
 * A rate of 0 disables the limiter. Idle keys are forgotten so memory stays bounded.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private lastSweep = 0;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly now: () => number = () => Date.now(),
  ) {
    if (ratePerSec < 0 || burst < 0) throw new RangeError('rate and burst must be >= 0');
  }

  get enabled(): boolean {
    return this.ratePerSec > 0;
  }

  /** Takes one token: `0` when allowed, otherwise the ms until a token is available. */
  take(key: string): number {
    if (!this.enabled) return 0;
    const now = this.now();
    this.sweep(now);
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.ratePerSec);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / this.ratePerSec) * 1000);
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    const full = (this.burst / this.ratePerSec) * 1000;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.at > full) this.buckets.delete(key);
    }
  }
}
