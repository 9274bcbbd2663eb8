import type { ProcessorEvents } from '../core/processor-events.js';

/** The counters of this process since it started (queue figures come from the store). */
export interface ProcessingCounters {
  /** Events accepted (duplicates not included). */
  readonly totalEvents: number;
  readonly duplicateEvents: number;
  /** Deliveries that succeeded. */
  readonly succeeded: number;
  /** Attempts that failed (each failed attempt counts once). */
  readonly failed: number;
  /** Retries scheduled. */
  readonly retried: number;
  readonly deadLettered: number;
  /** Mean duration of the last 1,000 attempts, ms. */
  readonly averageProcessingTimeMs: number;
  /** Time the last attempt finished, ISO-8601, or null. */
  readonly lastProcessedAt: string | null;
}

const WINDOW = 1000;

/** Outcomes of one destination's attempts in this process. */
export interface DestinationCounters {
  succeeded: number;
  failed: number;
  retried: number;
  deadLettered: number;
}

/** In-memory counters fed by the core's events. */
export class MetricsCollector {
  private totalEvents = 0;
  private duplicateEvents = 0;
  private succeeded = 0;
  private failed = 0;
  private retried = 0;
  private deadLettered = 0;
  private readonly durations = new Float64Array(WINDOW);
  private durationCount = 0;
  private durationSum = 0;
  private lastProcessedAt: number | null = null;
  /** Outcome of recent attempts, true = failed; for the failure rate. */
  private readonly outcomes = new Uint8Array(WINDOW);
  private failuresInWindow = 0;
  private readonly perDestination = new Map<string, DestinationCounters>();
  private readonly unsubscribe: () => void;

  constructor(
    events: ProcessorEvents,
    private readonly now: () => number,
  ) {
    const off = [
      events.on('event:accepted', (e) => {
        if (e.duplicate) this.duplicateEvents += 1;
        else this.totalEvents += 1;
      }),
      events.on('delivery:succeeded', (e) => {
        this.succeeded += 1;
        this.of(e.destination).succeeded += 1;
        this.record(e.durationMs, false);
      }),
      events.on('delivery:failed', (e) => {
        this.failed += 1;
        this.of(e.destination).failed += 1;
        this.record(e.durationMs, true);
      }),
      events.on('delivery:retry-scheduled', (e) => {
        this.retried += 1;
        this.of(e.destination).retried += 1;
      }),
      events.on('delivery:dead-lettered', (e) => {
        this.deadLettered += 1;
        this.of(e.destination).deadLettered += 1;
      }),
    ];
    this.unsubscribe = () => off.forEach((f) => f());
  }

  close(): void {
    this.unsubscribe();
  }

  snapshot(): ProcessingCounters {
    const samples = Math.min(this.durationCount, WINDOW);
    return {
      totalEvents: this.totalEvents,
      duplicateEvents: this.duplicateEvents,
      succeeded: this.succeeded,
      failed: this.failed,
      retried: this.retried,
      deadLettered: this.deadLettered,
      averageProcessingTimeMs: samples === 0 ? 0 : this.durationSum / samples,
      lastProcessedAt: this.lastProcessedAt === null ? null : new Date(this.lastProcessedAt).toISOString(),
    };
  }

  /** Share of the last (up to) 1,000 attempts that failed, 0..1, and how many attempts that is. */
  failureRate(): { rate: number; samples: number } {
    const samples = Math.min(this.durationCount, WINDOW);
    return { rate: samples === 0 ? 0 : this.failuresInWindow / samples, samples };
  }

  /** Per-destination outcome counters of this process. */
  destinations(): Record<string, DestinationCounters> {
    return Object.fromEntries([...this.perDestination].map(([name, c]) => [name, { ...c }]));
  }

  private of(destination: string): DestinationCounters {
    let counters = this.perDestination.get(destination);
    if (!counters) {
      counters = { succeeded: 0, failed: 0, retried: 0, deadLettered: 0 };
      this.perDestination.set(destination, counters);
    }
    return counters;
  }

  private record(durationMs: number, failed: boolean): void {
    const slot = this.durationCount % WINDOW;
    if (this.durationCount >= WINDOW) {
      this.durationSum -= this.durations[slot] ?? 0;
      this.failuresInWindow -= this.outcomes[slot] ?? 0;
    }
    this.durations[slot] = durationMs;
    this.durationSum += durationMs;
    this.outcomes[slot] = failed ? 1 : 0;
    this.failuresInWindow += failed ? 1 : 0;
    this.durationCount += 1;
    this.lastProcessedAt = this.now();
  }
}
