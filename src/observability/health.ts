import type { DeadLetterStats, QueueStats } from '../backends/backend.js';

export type HealthLevel = 'healthy' | 'degraded' | 'unhealthy';

export interface HealthComponent {
  readonly status: HealthLevel;
  /** The figure the status was judged on. */
  readonly value: number | null;
  readonly message: string;
}

export interface HealthStatus {
  /** The worst component's status. */
  readonly status: HealthLevel;
  /** 0-100: weighted sum of the components (healthy = full weight, degraded = half, unhealthy = none). */
  readonly score: number;
  readonly checkedAt: string;
  readonly components: {
    readonly backend: HealthComponent;
    readonly failureRate: HealthComponent;
    readonly queue: HealthComponent;
    readonly deadLetters: HealthComponent;
    readonly circuits: HealthComponent;
    /** A separate dispatch layer (Redis), when the backend has one. */
    readonly dispatch?: HealthComponent;
  };
}

export interface HealthThresholds {
  /** Failure share of recent attempts that degrades health. default 0.1 */
  readonly failureRateDegraded: number;
  /** ... and that makes it unhealthy. default 0.5 */
  readonly failureRateUnhealthy: number;
  /** Fewer recent attempts than this are not judged. default 10 */
  readonly minimumThroughput: number;
  /** Oldest unfinished delivery older than this degrades health. default 60000 */
  readonly oldestPendingDegradedMs: number;
  /** ... and older than this makes it unhealthy. default 900000 (15 min) */
  readonly oldestPendingUnhealthyMs: number;
  /** Dead letters at or above this count degrade health. default 10 */
  readonly deadLetterCountDegraded: number;
  /** A dead letter older than this degrades health. default 86400000 (24 h) */
  readonly deadLetterAgeDegradedMs: number;
  /** A backlog that grew by this many deliveries (and by half) over the trend window degrades health. default 1000 */
  readonly backlogGrowthMin: number;
  /** How far back the queue-depth trend looks. default 60000 */
  readonly trendWindowMs: number;
}

export const HEALTH_DEFAULTS: HealthThresholds = {
  failureRateDegraded: 0.1,
  failureRateUnhealthy: 0.5,
  minimumThroughput: 10,
  oldestPendingDegradedMs: 60_000,
  oldestPendingUnhealthyMs: 900_000,
  deadLetterCountDegraded: 10,
  deadLetterAgeDegradedMs: 86_400_000,
  backlogGrowthMin: 1000,
  trendWindowMs: 60_000,
};

const WEIGHTS = { backend: 25, failureRate: 20, queue: 15, deadLetters: 20, circuits: 20 } as const;
/** With a dispatch layer, it takes this much of the backend's weight. */
const DISPATCH_WEIGHT = 10;
const RANK: Record<HealthLevel, number> = { healthy: 0, degraded: 1, unhealthy: 2 };
const CREDIT: Record<HealthLevel, number> = { healthy: 1, degraded: 0.5, unhealthy: 0 };

export interface HealthInputs {
  readonly backendError: unknown;
  readonly queue: QueueStats | null;
  readonly deadLetters: DeadLetterStats | null;
  readonly failure: { readonly rate: number; readonly samples: number };
  /** Queue depth at the start of the trend window and now (null until there is history). */
  readonly queueTrend?: { readonly from: number; readonly to: number; readonly overMs: number } | null;
  /** Circuit state per destination run by this process. */
  readonly circuits: Readonly<Record<string, 'closed' | 'open' | 'half-open' | 'none'>>;
  /** The backend's dispatch layer (`Backend.dispatchHealth()`), if it has one. */
  readonly dispatch?: { readonly status: HealthLevel; readonly message: string } | null;
  readonly now: number;
}

/** Age of the oldest unfinished delivery across destinations, ms, or null when none. */
export function oldestPending(queue: QueueStats): number | null {
  let oldest: number | null = null;
  for (const stats of Object.values(queue.byDestination)) {
    if (stats.oldestPendingAgeMs !== null) oldest = Math.max(oldest ?? 0, stats.oldestPendingAgeMs);
  }
  return oldest;
}

/** Judges the processor's health from figures the caller gathered. Pure: easy to test. */
export function assessHealth(inputs: HealthInputs, t: HealthThresholds = HEALTH_DEFAULTS): HealthStatus {
  const backend: HealthComponent =
    inputs.backendError === null
      ? { status: 'healthy', value: 1, message: 'store reachable' }
      : {
          status: 'unhealthy',
          value: 0,
          message: `store unreachable: ${(inputs.backendError as Error)?.message ?? String(inputs.backendError)}`,
        };

  const { rate, samples } = inputs.failure;
  const failureRate: HealthComponent =
    samples < t.minimumThroughput
      ? { status: 'healthy', value: rate, message: `only ${samples} recent attempts; not judged` }
      : {
          status:
            rate >= t.failureRateUnhealthy
              ? 'unhealthy'
              : rate >= t.failureRateDegraded
                ? 'degraded'
                : 'healthy',
          value: rate,
          message: `${(rate * 100).toFixed(1)} % of the last ${samples} attempts failed`,
        };

  const age = inputs.queue ? oldestPending(inputs.queue) : null;
  const trend = inputs.queueTrend ?? null;
  // A backlog that keeps growing (by half again, and by at least `backlogGrowthMin`) is a
  // warning even while its oldest delivery is still young.
  const growing =
    trend !== null && trend.to - trend.from >= t.backlogGrowthMin && trend.to >= trend.from * 1.5;
  const queue: HealthComponent =
    inputs.queue === null
      ? { status: 'unhealthy', value: null, message: 'queue figures unavailable' }
      : {
          status:
            age !== null && age >= t.oldestPendingUnhealthyMs
              ? 'unhealthy'
              : (age !== null && age >= t.oldestPendingDegradedMs) || growing
                ? 'degraded'
                : 'healthy',
          value: inputs.queue.depth,
          message:
            `${inputs.queue.depth} unfinished deliveries; oldest ${age === null ? 'none' : `${Math.round(age / 1000)} s`}` +
            (trend === null
              ? ''
              : `; ${trend.from} → ${trend.to} over the last ${Math.round(trend.overMs / 1000)} s`),
        };

  const dl = inputs.deadLetters;
  const deadLetters: HealthComponent =
    dl === null
      ? { status: 'unhealthy', value: null, message: 'dead-letter figures unavailable' }
      : {
          status:
            dl.count >= t.deadLetterCountDegraded ||
            (dl.oldestAgeMs !== null && dl.oldestAgeMs >= t.deadLetterAgeDegradedMs)
              ? 'degraded'
              : 'healthy',
          value: dl.count,
          message:
            dl.count === 0
              ? 'no dead letters'
              : `${dl.count} dead letters; oldest ${Math.round((dl.oldestAgeMs ?? 0) / 3_600_000)} h old`,
        };

  const withBreaker = Object.entries(inputs.circuits).filter(([, state]) => state !== 'none');
  const notClosed = withBreaker.filter(([, state]) => state !== 'closed').map(([name]) => name);
  const circuits: HealthComponent = {
    status:
      notClosed.length === 0 ? 'healthy' : notClosed.length === withBreaker.length ? 'unhealthy' : 'degraded',
    value: notClosed.length,
    message:
      notClosed.length === 0
        ? `${withBreaker.length} circuit breakers closed`
        : `paused (breaker open or probing): ${notClosed.join(', ')}`,
  };

  const components = { backend, failureRate, queue, deadLetters, circuits };
  const dispatch: HealthComponent | null = inputs.dispatch
    ? { status: inputs.dispatch.status, value: null, message: inputs.dispatch.message }
    : null;
  let score = 0;
  let status: HealthLevel = 'healthy';
  for (const [name, component] of Object.entries(components) as [keyof typeof WEIGHTS, HealthComponent][]) {
    const weight = dispatch && name === 'backend' ? WEIGHTS.backend - DISPATCH_WEIGHT : WEIGHTS[name];
    score += weight * CREDIT[component.status];
    if (RANK[component.status] > RANK[status]) status = component.status;
  }
  if (dispatch) {
    score += DISPATCH_WEIGHT * CREDIT[dispatch.status];
    if (RANK[dispatch.status] > RANK[status]) status = dispatch.status;
  }
  return {
    status,
    score: Math.round(score),
    checkedAt: new Date(inputs.now).toISOString(),
    components: dispatch ? { ...components, dispatch } : components,
  };
}

/** Remembers queue depths over time to tell a growing backlog from a steady one. */
export class QueueTrend {
  private readonly samples: { at: number; depth: number }[] = [];

  constructor(private readonly windowMs: number) {}

  /** Records a depth and answers the change since the oldest sample still inside the window. */
  record(at: number, depth: number): { from: number; to: number; overMs: number } | null {
    this.samples.push({ at, depth });
    while (this.samples.length > 1 && this.samples[1]!.at <= at - this.windowMs) this.samples.shift();
    const first = this.samples[0]!;
    return first.at === at ? null : { from: first.depth, to: depth, overMs: at - first.at };
  }
}
