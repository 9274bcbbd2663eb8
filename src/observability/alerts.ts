import type { DeadLetterStats, QueueStats } from '../backends/backend.js';
import type { CancelTimer, Clock } from '../clock.js';
import type { ReliableEventProcessor } from '../core/processor.js';
import type { ProcessorEventMap } from '../core/processor-events.js';
import { oldestPending } from './health.js';

export type AlertType =
  | 'dead_letters_over_threshold'
  | 'dead_letter_too_old'
  | 'circuit_opened'
  | 'circuit_closed'
  | 'backlog_over_threshold'
  | 'delivery_stuck';

export type AlertSeverity = 'info' | 'warning' | 'critical';

export interface Alert {
  readonly type: AlertType;
  readonly severity: AlertSeverity;
  readonly message: string;
  /** When the monitor raised it (ISO 8601, from the monitor's clock). */
  readonly at: string;
  readonly destination?: string;
  /** The numbers the alert was judged on. */
  readonly figures: Readonly<Record<string, number | string | null>>;
  /** True on the alert that announces a condition has cleared. */
  readonly resolved?: boolean;
}

export interface AlertThresholds {
  /** Dead letters at or above this count raise an alert. default 10 */
  deadLetterCount: number;
  /** A dead letter at least this old raises an alert. default 86400000 (24 h) */
  deadLetterAgeMs: number;
  /** Unfinished deliveries (all destinations) at or above this raise an alert. default 10000 */
  backlog: number;
  /** A recovered delivery whose lease expired this many times is stuck. default 2 */
  leaseExpiries: number;
  /** How often the store-backed conditions are checked while started. default 30000 */
  checkIntervalMs: number;
}

export const ALERT_DEFAULTS: AlertThresholds = {
  deadLetterCount: 10,
  deadLetterAgeMs: 86_400_000,
  backlog: 10_000,
  leaseExpiries: 2,
  checkIntervalMs: 30_000,
};

/** What the monitor watches: a `ReliableEventProcessor` fits as is. */
export interface AlertSource {
  on: ReliableEventProcessor['on'];
  getStats(): Promise<{ queue: QueueStats; deadLetters: DeadLetterStats }>;
}

export interface AlertMonitorOptions {
  readonly clock: Clock;
  readonly thresholds?: Partial<AlertThresholds>;
  /** Gets a failed `getStats` and a throwing alert listener. default: ignored */
  readonly onError?: (error: unknown) => void;
}

export type AlertListener = (alert: Alert) => void;

/** Most delivery ids remembered as already alerted `delivery_stuck` (oldest forgotten first). */
const STUCK_MEMORY = 10_000;

/** A store-backed condition: over its threshold or not. Raised once per crossing, resolved once. */
type LevelCondition = 'dead_letters_over_threshold' | 'dead_letter_too_old' | 'backlog_over_threshold';

function checkThresholds(t: AlertThresholds): AlertThresholds {
  for (const [name, value] of Object.entries(t)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`alert threshold ${name} must be a finite number >= 0, got ${String(value)}`);
    }
  }
  if (t.checkIntervalMs < 1) throw new RangeError('alert threshold checkIntervalMs must be >= 1');
  return t;
}

/**
 * Turns the processor's events and store figures into alerts, each raised once per crossing:
 * a condition that goes over its threshold raises one alert, staying over raises nothing more,
 * going back under raises one `resolved` alert of the same type, and crossing again raises again.
 *
 * Circuit and stuck-delivery alerts come from events as they happen; dead-letter and backlog
 * alerts from `check()`, which runs every `checkIntervalMs` on the injected clock once started.
 */
export class AlertMonitor {
  readonly thresholds: Readonly<AlertThresholds>;

  private readonly source: AlertSource;
  private readonly clock: Clock;
  private readonly onError: (error: unknown) => void;
  private readonly listeners = new Set<AlertListener>();
  /** Store-backed conditions currently over their threshold. */
  private readonly over = new Set<LevelCondition>();
  private readonly stuck = new Set<string>();
  private unsubscribe: (() => void)[] = [];
  private cancelTimer: CancelTimer | null = null;
  private running = false;
  /** Bumped by start/stop so a check that outlives a stop does not reschedule. */
  private generation = 0;
  /** Checks run one after another, so figures are never applied out of order. */
  private checking: Promise<unknown> = Promise.resolve();

  constructor(source: AlertSource, options: AlertMonitorOptions) {
    this.source = source;
    this.clock = options.clock;
    this.onError = options.onError ?? (() => undefined);
    this.thresholds = Object.freeze(checkThresholds({ ...ALERT_DEFAULTS, ...options.thresholds }));
  }

  /** Calls `listener` with every alert; answers a function that unsubscribes. */
  onAlert(listener: AlertListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Subscribes to the source's events and schedules the periodic checks. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.generation += 1;
    this.unsubscribe = [
      this.source.on('circuit:state-changed', (e) => this.onCircuit(e)),
      this.source.on('delivery:lease-recovered', (e) => this.onLeaseRecovered(e)),
      this.source.on('delivery:succeeded', (e) => this.stuck.delete(e.deliveryId)),
    ];
    this.schedule(this.generation);
  }

  /** Cancels the timer and unsubscribes. Safe to call twice; `start()` may follow. */
  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.generation += 1;
    this.cancelTimer?.();
    this.cancelTimer = null;
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
  }

  /**
   * Evaluates the store-backed conditions now and answers the alerts this check raised. A
   * failing `getStats` goes to `onError` and answers none; the next check tries again.
   */
  check(): Promise<Alert[]> {
    const run = this.checking.then(() => this.evaluate());
    this.checking = run;
    return run;
  }

  private async evaluate(): Promise<Alert[]> {
    let stats: { queue: QueueStats; deadLetters: DeadLetterStats };
    try {
      stats = await this.source.getStats();
    } catch (error) {
      this.report(error);
      return [];
    }
    const t = this.thresholds;
    const { queue, deadLetters: dl } = stats;
    const raised: Alert[] = [];
    const level = (type: LevelCondition, isOver: boolean, make: (resolved: boolean) => Omit<Alert, 'at'>) => {
      if (isOver === this.over.has(type)) return;
      if (isOver) this.over.add(type);
      else this.over.delete(type);
      raised.push(this.stamp({ ...make(!isOver), resolved: !isOver }));
    };

    level('dead_letters_over_threshold', dl.count >= t.deadLetterCount, (resolved) => ({
      type: 'dead_letters_over_threshold',
      severity: 'warning',
      message: resolved
        ? `dead letters back under ${t.deadLetterCount}: ${dl.count}`
        : `${dl.count} dead letters (threshold ${t.deadLetterCount})`,
      figures: { count: dl.count, threshold: t.deadLetterCount, oldestAgeMs: dl.oldestAgeMs },
    }));

    level(
      'dead_letter_too_old',
      dl.oldestAgeMs !== null && dl.oldestAgeMs >= t.deadLetterAgeMs,
      (resolved) => ({
        type: 'dead_letter_too_old',
        severity: 'warning',
        message: resolved
          ? 'no dead letter is older than the threshold any more'
          : `the oldest dead letter is ${Math.round((dl.oldestAgeMs ?? 0) / 3_600_000)} h old (threshold ${Math.round(t.deadLetterAgeMs / 3_600_000)} h)`,
        figures: { oldestAgeMs: dl.oldestAgeMs, threshold: t.deadLetterAgeMs, count: dl.count },
      }),
    );

    const oldestPendingAgeMs = oldestPending(queue);
    level('backlog_over_threshold', queue.depth >= t.backlog, (resolved) => ({
      type: 'backlog_over_threshold',
      severity: 'warning',
      message: resolved
        ? `backlog back under ${t.backlog}: ${queue.depth} unfinished deliveries`
        : `${queue.depth} unfinished deliveries (threshold ${t.backlog}); oldest ${oldestPendingAgeMs === null ? 'none' : `${Math.round(oldestPendingAgeMs / 1000)} s`}`,
      figures: { depth: queue.depth, threshold: t.backlog, oldestPendingAgeMs },
    }));

    for (const alert of raised) this.publish(alert);
    return raised;
  }

  private onCircuit(e: ProcessorEventMap['circuit:state-changed']): void {
    const figures = { destination: e.destination, trips: e.trips, from: e.from, to: e.to, reason: e.reason };
    if (e.to === 'open' && e.from === 'closed') {
      // A re-open after a failed half-open probe is the same outage, not a new crossing.
      this.publish(
        this.stamp({
          type: 'circuit_opened',
          severity: 'critical',
          message: `circuit opened for ${e.destination}: deliveries are paused (${e.reason}, trip ${e.trips})`,
          destination: e.destination,
          figures,
        }),
      );
    } else if (e.to === 'closed' && e.from !== 'closed') {
      this.publish(
        this.stamp({
          type: 'circuit_closed',
          severity: 'info',
          message: `circuit closed for ${e.destination}: deliveries resume (${e.reason})`,
          destination: e.destination,
          figures,
        }),
      );
    }
  }

  private onLeaseRecovered(e: ProcessorEventMap['delivery:lease-recovered']): void {
    if (e.leaseExpiries < this.thresholds.leaseExpiries || this.stuck.has(e.deliveryId)) return;
    this.stuck.add(e.deliveryId);
    if (this.stuck.size > STUCK_MEMORY) {
      const oldest = this.stuck.values().next().value;
      if (oldest !== undefined) this.stuck.delete(oldest);
    }
    this.publish(
      this.stamp({
        type: 'delivery_stuck',
        severity: 'warning',
        message: `delivery ${e.deliveryId} to ${e.destination} lost its worker ${e.leaseExpiries} times (threshold ${this.thresholds.leaseExpiries})`,
        destination: e.destination,
        figures: {
          deliveryId: e.deliveryId,
          eventId: e.eventId,
          destination: e.destination,
          attempt: e.attempt,
          leaseExpiries: e.leaseExpiries,
          threshold: this.thresholds.leaseExpiries,
        },
      }),
    );
  }

  private stamp(alert: Omit<Alert, 'at'> & { resolved?: boolean }): Alert {
    const at = new Date(this.clock.now()).toISOString();
    const { resolved, ...rest } = alert;
    return resolved ? { ...rest, at, resolved: true } : { ...rest, at };
  }

  private publish(alert: Alert): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(alert);
      } catch (error) {
        this.report(error);
      }
    }
  }

  private report(error: unknown): void {
    try {
      this.onError(error);
    } catch {
      // an error handler's own bug must not break the monitor
    }
  }

  private schedule(generation: number): void {
    this.cancelTimer = this.clock.setTimer(() => {
      this.cancelTimer = null;
      void this.check().finally(() => {
        if (this.running && this.generation === generation) this.schedule(generation);
      });
    }, this.thresholds.checkIntervalMs);
  }
}
