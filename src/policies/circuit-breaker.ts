import { systemClock, type Clock } from '../clock.js';
import { CircuitOpenError, InvalidOptionError } from '../errors.js';
import { OutcomeWindow } from './outcome-window.js';

export type CircuitStateName = 'closed' | 'open' | 'half-open';

/** Where a breaker stands. A new object on every change; never mutated. */
export type CircuitState =
  | { readonly kind: 'closed' }
  | {
      readonly kind: 'open';
      readonly openedAt: number;
      /** From this time (epoch ms) the next call is let through as a probe. */
      readonly reopensAt: number;
      /** Openings in a row without the circuit closing in between (1 on the first trip). */
      readonly trips: number;
    }
  | { readonly kind: 'half-open'; readonly probesInFlight: number };

export type CircuitTransitionReason =
  'consecutive_failures' | 'failure_rate' | 'recovery_timeout' | 'probe_succeeded' | 'probe_failed' | 'reset';

export interface CircuitStateChange {
  readonly from: CircuitStateName;
  readonly to: CircuitStateName;
  readonly at: number;
  readonly reason: CircuitTransitionReason;
}

export interface CircuitBreakerOptions {
  /** Consecutive failures that open a closed circuit. Integer >= 1. default 5 */
  failureThreshold?: number;
  /** How long an open circuit refuses calls before letting a probe through. >= 0. default 30000 */
  recoveryTimeoutMs?: number;
  /** Length of the sliding window the failure rate is measured over. > 0. default 60000 */
  monitoringPeriodMs?: number;
  /** Calls the window must hold before its failure rate is judged. Integer >= 1. default 10 */
  minimumThroughput?: number;
  /** Failure rate (failures / calls in the window) that opens the circuit. In (0, 1]. default 0.5 */
  failureRateThreshold?: number;
  /** Calls allowed in flight at once while half-open. Integer >= 1. default 1 */
  halfOpenMaxProbes?: number;
  /** default `systemClock` */
  clock?: Clock;
}

export const CIRCUIT_BREAKER_DEFAULTS = {
  failureThreshold: 5,
  recoveryTimeoutMs: 30_000,
  monitoringPeriodMs: 60_000,
  minimumThroughput: 10,
  failureRateThreshold: 0.5,
  halfOpenMaxProbes: 1,
} as const satisfies Required<Omit<CircuitBreakerOptions, 'clock'>>;

export interface CircuitBreakerMetrics {
  readonly state: CircuitStateName;
  /** Times the circuit opened since it was made (a failed probe counts again). */
  readonly trips: number;
  /** Outcomes recorded: `successes + failures`. */
  readonly totalCalls: number;
  readonly successes: number;
  readonly failures: number;
  /** Calls refused because the circuit was open or every probe slot was taken. */
  readonly rejected: number;
  readonly consecutiveFailures: number;
  /** Calls in the sliding window now. */
  readonly windowCalls: number;
  /** Failures / calls in the sliding window now; 0 when it is empty. */
  readonly windowFailureRate: number;
  readonly lastStateChangeAt: number;
}

export interface CircuitExecuteOptions {
  /** Whether an error counts against the circuit. default: every error does */
  isFailure?: (error: unknown) => boolean;
  /** Handed to `fn`. */
  signal?: AbortSignal;
}

export type CircuitStateListener = (change: CircuitStateChange) => void;

const OPTION_KEYS: ReadonlySet<string> = new Set([...Object.keys(CIRCUIT_BREAKER_DEFAULTS), 'clock']);

function checked(name: string, value: number, min: number, max: number, integer: boolean): number {
  const ok = Number.isFinite(value) && value >= min && value <= max && (!integer || Number.isInteger(value));
  if (!ok) {
    const kind = integer ? 'an integer' : 'a number';
    throw new InvalidOptionError(
      `circuitBreaker.${name} must be ${kind} between ${min} and ${max}, got ${value}`,
    );
  }
  return value;
}

/**
 * A circuit breaker with two ways to trip: `failureThreshold` failures in a row, or a failure
 * rate of at least `failureRateThreshold` over the last `monitoringPeriodMs` once that window
 * holds `minimumThroughput` calls. An open circuit turns half-open when `clock.now()` reaches
 * `reopensAt` (checked lazily, on the next call into the breaker); half-open lets
 * `halfOpenMaxProbes` calls through at a time: a probe that succeeds closes the circuit, one
 * that fails opens it again.
 *
 * Two ways to use it. `execute(fn)` runs the call itself. A caller that runs calls on its own
 * (the dispatcher) asks `tryAcquire()` before each call and then reports exactly one of
 * `recordSuccess()`, `recordFailure()` or `release()` (no outcome, e.g. shutdown).
 */
export class CircuitBreaker {
  private readonly failureThreshold: number;
  private readonly recoveryTimeoutMs: number;
  private readonly minimumThroughput: number;
  private readonly failureRateThreshold: number;
  /** Probes allowed in flight at once while half-open. */
  readonly halfOpenMaxProbes: number;
  private readonly clock: Clock;
  private readonly window: OutcomeWindow;
  private readonly listeners = new Set<CircuitStateListener>();

  private state: CircuitState = { kind: 'closed' };
  private consecutiveFailures = 0;
  private tripsInRow = 0;
  private trips = 0;
  private successes = 0;
  private failures = 0;
  private rejected = 0;
  private lastStateChangeAt: number;
  /** Bumped on every transition, so `execute` can tell an outcome from an earlier state. */
  private generation = 0;

  constructor(options: CircuitBreakerOptions = {}) {
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new InvalidOptionError(`circuitBreaker.${key} is not an option`);
    }
    const d = CIRCUIT_BREAKER_DEFAULTS;
    const max = Number.MAX_SAFE_INTEGER;
    this.failureThreshold = checked(
      'failureThreshold',
      options.failureThreshold ?? d.failureThreshold,
      1,
      max,
      true,
    );
    this.recoveryTimeoutMs = checked(
      'recoveryTimeoutMs',
      options.recoveryTimeoutMs ?? d.recoveryTimeoutMs,
      0,
      max,
      false,
    );
    const periodMs = checked(
      'monitoringPeriodMs',
      options.monitoringPeriodMs ?? d.monitoringPeriodMs,
      1,
      max,
      false,
    );
    this.minimumThroughput = checked(
      'minimumThroughput',
      options.minimumThroughput ?? d.minimumThroughput,
      1,
      max,
      true,
    );
    this.failureRateThreshold = checked(
      'failureRateThreshold',
      options.failureRateThreshold ?? d.failureRateThreshold,
      Number.MIN_VALUE,
      1,
      false,
    );
    this.halfOpenMaxProbes = checked(
      'halfOpenMaxProbes',
      options.halfOpenMaxProbes ?? d.halfOpenMaxProbes,
      1,
      max,
      true,
    );
    const clock = options.clock ?? systemClock;
    if (typeof clock?.now !== 'function' || typeof clock.setTimer !== 'function') {
      throw new InvalidOptionError('circuitBreaker.clock must be a Clock (now and setTimer)');
    }
    this.clock = clock;
    this.window = new OutcomeWindow(periodMs);
    this.lastStateChangeAt = clock.now();
  }

  /** The current state (an open circuit whose recovery timeout has passed is half-open). */
  getState(): CircuitState {
    this.refresh();
    return this.state;
  }

  /** When an open circuit lets the next call through; `null` unless open. */
  nextAttemptAt(): number | null {
    this.refresh();
    return this.state.kind === 'open' ? this.state.reopensAt : null;
  }

  /**
   * May a call start now? Closed: yes. Open: no. Half-open: yes while fewer than
   * `halfOpenMaxProbes` probes are in flight, and the call takes a probe slot: report its
   * outcome with `recordSuccess`/`recordFailure`, or `release()` it. A refusal counts as rejected.
   */
  tryAcquire(): boolean {
    this.refresh();
    const state = this.state;
    switch (state.kind) {
      case 'closed':
        return true;
      case 'half-open':
        if (state.probesInFlight < this.halfOpenMaxProbes) {
          this.state = { kind: 'half-open', probesInFlight: state.probesInFlight + 1 };
          return true;
        }
        this.rejected++;
        return false;
      case 'open':
        this.rejected++;
        return false;
    }
  }

  /**
   * A call succeeded. Closed: the failure streak ends. Half-open with a probe in flight: the
   * circuit closes with a fresh window. Otherwise (a call that outlived the state it started in)
   * only the counters move.
   */
  recordSuccess(): void {
    this.settle('success', undefined);
  }

  /**
   * A call failed. Closed: it may open the circuit (streak or rate). Half-open with a probe in
   * flight: the circuit opens again. Otherwise only the counters move.
   */
  recordFailure(): void {
    this.settle('failure', undefined);
  }

  /** A call that was let through ended without an outcome: its probe slot, if any, is freed. */
  release(): void {
    this.settle('none', undefined);
  }

  /**
   * Runs `fn` through the breaker. Rejects at once with `CircuitOpenError` when the call may not
   * start. An error for which `isFailure` returns false is rethrown without counting.
   */
  async execute<T>(
    fn: (signal?: AbortSignal) => Promise<T>,
    options: CircuitExecuteOptions = {},
  ): Promise<T> {
    if (!this.tryAcquire()) throw new CircuitOpenError(this.nextAttemptAt());
    const generation = this.generation;
    let value: T;
    try {
      value = await fn(options.signal);
    } catch (error) {
      this.settle(counts(error, options.isFailure) ? 'failure' : 'none', generation);
      throw error;
    }
    this.settle('success', generation);
    return value;
  }

  getMetrics(): CircuitBreakerMetrics {
    this.refresh();
    this.window.prune(this.clock.now());
    return {
      state: this.state.kind,
      trips: this.trips,
      totalCalls: this.successes + this.failures,
      successes: this.successes,
      failures: this.failures,
      rejected: this.rejected,
      consecutiveFailures: this.consecutiveFailures,
      windowCalls: this.window.calls,
      windowFailureRate: this.window.failureRate,
      lastStateChangeAt: this.lastStateChangeAt,
    };
  }

  /** Calls `listener` on every change of state; a listener that throws is ignored. */
  onStateChange(listener: CircuitStateListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Closes the circuit and forgets the window and the failure streak (the counters stay). */
  reset(): void {
    this.consecutiveFailures = 0;
    this.tripsInRow = 0;
    this.window.clear();
    if (this.state.kind !== 'closed') this.transition({ kind: 'closed' }, 'reset');
  }

  /**
   * `execute` knows the generation its call started in: an outcome from an earlier state only
   * moves the counters. The acquire/record API cannot tell, so a half-open outcome is taken to be
   * a probe's whenever a probe is in flight.
   */
  private settle(outcome: 'success' | 'failure' | 'none', startedIn: number | undefined): void {
    this.refresh();
    if (outcome === 'success') this.successes++;
    if (outcome === 'failure') this.failures++;
    if (startedIn !== undefined && startedIn !== this.generation) return;
    const state = this.state;
    const now = this.clock.now();
    switch (state.kind) {
      case 'closed':
        if (outcome === 'success') {
          this.consecutiveFailures = 0;
          this.window.push(now, false);
        } else if (outcome === 'failure') {
          this.consecutiveFailures++;
          this.window.push(now, true);
          if (this.consecutiveFailures >= this.failureThreshold) {
            this.trip('consecutive_failures');
          } else if (
            this.window.calls >= this.minimumThroughput &&
            this.window.failureRate >= this.failureRateThreshold
          ) {
            this.trip('failure_rate');
          }
        }
        return;
      case 'half-open':
        if (state.probesInFlight === 0) return;
        if (outcome === 'success') {
          this.consecutiveFailures = 0;
          this.tripsInRow = 0;
          this.window.clear();
          this.transition({ kind: 'closed' }, 'probe_succeeded');
        } else if (outcome === 'failure') {
          this.trip('probe_failed');
        } else {
          this.state = { kind: 'half-open', probesInFlight: state.probesInFlight - 1 };
        }
        return;
      case 'open':
        return;
    }
  }

  private trip(reason: 'consecutive_failures' | 'failure_rate' | 'probe_failed'): void {
    const now = this.clock.now();
    this.trips++;
    this.tripsInRow++;
    this.transition(
      { kind: 'open', openedAt: now, reopensAt: now + this.recoveryTimeoutMs, trips: this.tripsInRow },
      reason,
    );
  }

  /** Open → half-open once the recovery timeout has passed. */
  private refresh(): void {
    if (this.state.kind === 'open' && this.clock.now() >= this.state.reopensAt) {
      this.transition({ kind: 'half-open', probesInFlight: 0 }, 'recovery_timeout');
    }
  }

  private transition(to: CircuitState, reason: CircuitTransitionReason): void {
    const from = this.state.kind;
    const at = this.clock.now();
    this.state = to;
    this.generation++;
    this.lastStateChangeAt = at;
    const change: CircuitStateChange = { from, to: to.kind, at, reason };
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch {
        // A listener's failure is its own; the breaker's state is already settled.
      }
    }
  }
}

function counts(error: unknown, isFailure: ((error: unknown) => boolean) | undefined): boolean {
  if (!isFailure) return true;
  try {
    return isFailure(error);
  } catch {
    return true;
  }
}
