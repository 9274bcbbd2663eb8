import type { Logger } from 'pino';
import type { AttemptReport, Backend, ClaimedDelivery, ClaimResult, Lease } from '../backends/backend.js';
import type { CancelTimer, Clock } from '../clock.js';
import type { HandlerContext, ResolvedDestination } from '../core/destination.js';
import { toErrorInfo } from '../core/error-info.js';
import type { DeliveryInfo, ProcessorEvents } from '../core/processor-events.js';
import { HandlerTimeoutError, LeaseExpiredError, LeaseLostError, ShuttingDownError } from '../errors.js';

export interface RunnerDeps {
  readonly backend: Backend;
  readonly clock: Clock;
  readonly events: ProcessorEvents;
  readonly logger: Logger;
  readonly workerId: string;
}

interface InFlight {
  readonly lease: Lease;
  readonly info: DeliveryInfo;
  readonly controller: AbortController;
  readonly done: Promise<void>;
  /** Set by a graceful stop: the lease was handed back, the outcome must not be recorded. */
  released: boolean;
  /** Its concurrency slot was given back (once the outcome write was issued). */
  slotFreed: boolean;
  /** A half-open circuit breaker's probe: its failure is charged to the destination. */
  readonly probe: boolean;
}

/** How long to wait before claiming again after the store failed. */
const CLAIM_ERROR_BACKOFF_MS = 1000;
/** Longest single sleep before looking again. */
const MAX_SLEEP_MS = 86_400_000;

/**
 * Runs one destination: claims due deliveries up to its concurrency, runs the handler with a
 * timeout and a renewed lease, and settles each attempt (success, retry at T, dead letter).
 * It claims when told there is work, when capacity frees up, and when the next retry falls due;
 * it never polls on a fixed delay.
 */
export class DestinationRunner {
  private readonly inFlight = new Map<string, InFlight>();
  private running = false;
  private claiming: Promise<void> | null = null;
  private claimAgain = false;
  /** The pending claim has already decided how many it takes. */
  private claimSized = false;
  /**
   * The store may hold due deliveries this runner has not claimed: set when told of work, when
   * a wake-up falls due and when a claim came back full; cleared when a claim took fewer than it
   * asked for and no news of work came meanwhile. A freed slot claims only while it is set, so
   * a runner that has caught up does not look for work after every attempt.
   */
  private backlog = true;
  /** Counts the news of work (notify, wake-ups), to tell whether some came during a claim. */
  private news = 0;
  /** Slots taken: attempts whose handler runs or whose outcome is not yet handed to the store. */
  private busy = 0;
  private wakeAt = Number.POSITIVE_INFINITY;
  private cancelWake: CancelTimer | null = null;
  private cancelRenew: CancelTimer | null = null;

  constructor(
    private readonly destination: ResolvedDestination,
    private readonly deps: RunnerDeps,
  ) {
    const breaker = destination.breaker;
    breaker?.onStateChange((change) =>
      deps.events.emit('circuit:state-changed', {
        destination: destination.spec.name,
        from: change.from,
        to: change.to,
        reason: change.reason,
        trips: breaker.getMetrics().trips,
        at: change.at,
      }),
    );
  }

  get name(): string {
    return this.destination.spec.name;
  }

  get circuitState(): 'closed' | 'open' | 'half-open' | 'none' {
    return this.destination.breaker?.getState().kind ?? 'none';
  }

  get active(): number {
    return this.inFlight.size;
  }

  get leaseMs(): number {
    return this.destination.leaseMs;
  }

  /**
   * Direct hand-off (see `HandOff`): takes a slot for a delivery being published by this process,
   * if the runner has caught up with its queue (no claim under way, nothing known to be due in
   * the store), has a free slot and its breaker (if any) is closed. The slot is held until
   * `runTaken` or `untake`.
   */
  take(): boolean {
    if (!this.running || this.claiming || this.backlog) return false;
    if (this.busy >= this.destination.concurrency) return false;
    const breaker = this.destination.breaker;
    if (breaker && breaker.getState().kind !== 'closed') return false;
    this.busy += 1;
    return true;
  }

  /** Gives back a slot taken for a delivery that was not stored leased after all. */
  untake(): void {
    this.busy -= 1;
    this.pump();
  }

  /** Runs a delivery stored leased to this runner, in the slot `take` held for it. */
  runTaken(delivery: ClaimedDelivery): void {
    this.busy -= 1;
    if (!this.running) {
      // Stopped while the publish was committing: hand it back for the next worker.
      this.deps.backend.release(delivery.lease).catch(() => undefined);
      return;
    }
    this.run(delivery, false);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.scheduleRenewal();
    this.pump();
  }

  /** New work may be due. */
  notify(): void {
    this.expectWork();
    this.pump();
  }

  /**
   * Stops claiming, waits until `deadline` for running attempts, then hands the rest back
   * (their attempts do not count). Answers how many were handed back.
   */
  async stop(deadline: Promise<void>): Promise<number> {
    this.running = false;
    this.cancelWake?.();
    this.cancelWake = null;
    await this.claiming;
    await Promise.race([this.idle(), deadline]);
    const remaining = [...this.inFlight.values()];
    for (const flight of remaining) {
      flight.released = true;
      flight.controller.abort(new ShuttingDownError('the processor is stopping'));
    }
    await Promise.all(
      remaining.map(async (flight) => {
        try {
          await this.deps.backend.release(flight.lease);
          this.deps.events.emit('delivery:released', flight.info);
        } catch (error) {
          if (!(error instanceof LeaseLostError))
            this.deps.events.emit('processor:error', { error, during: 'release' });
        }
      }),
    );
    this.cancelRenew?.();
    this.cancelRenew = null;
    return remaining.length;
  }

  /** Resolves when every attempt now running has settled. */
  idle(): Promise<void> {
    return Promise.all([...this.inFlight.values()].map((f) => f.done)).then(() => undefined);
  }

  private expectWork(): void {
    this.backlog = true;
    this.news += 1;
  }

  private pump(): void {
    if (!this.running) return;
    if (this.claiming) {
      // A claim not yet executed will see the free slots; one already executed needs a successor.
      if (this.claimSized && this.backlog) this.claimAgain = true;
      return;
    }
    if (!this.backlog) return;
    if (this.destination.concurrency - this.busy <= 0) return;
    const breaker = this.destination.breaker;
    if (breaker?.getState().kind === 'open') {
      // Paused: nothing is claimed and no attempt is spent until the recovery timeout.
      this.scheduleWake(breaker.nextAttemptAt());
      return;
    }
    this.claiming = this.claim().finally(() => {
      this.claiming = null;
      if (this.running && this.claimAgain) this.pump();
    });
  }

  /**
   * The claim's size is decided when the backend executes it, not when it is asked for: slots
   * freed meanwhile (attempts settling in the same group commit) are filled by the same claim.
   */
  private async claim(): Promise<void> {
    this.claimAgain = false;
    this.claimSized = false;
    let requested = 0;
    let probes = 0;
    let sizedWhileOpen = false;
    let newsWhenSized = this.news;
    let result: ClaimResult;
    try {
      result = await this.deps.backend.claim({
        destination: this.name,
        limit: () => {
          this.claimSized = true;
          newsWhenSized = this.news;
          const free = this.running ? Math.max(0, this.destination.concurrency - this.busy) : 0;
          ({ allowed: requested, probes, open: sizedWhileOpen } = this.admit(free));
          return requested;
        },
        leaseMs: this.destination.leaseMs,
        workerId: this.deps.workerId,
      });
    } catch (error) {
      this.releaseProbes(probes);
      if (!this.running) return;
      this.deps.events.emit('processor:error', { error, during: `claim ${this.name}` });
      this.scheduleWake(this.deps.clock.now() + CLAIM_ERROR_BACKOFF_MS);
      return;
    }
    this.releaseProbes(Math.max(0, probes - result.deliveries.length));
    if (!this.running) {
      this.releaseProbes(Math.min(probes, result.deliveries.length));
      // Stopped while the claim was on its way: hand everything straight back.
      await Promise.all(
        result.deliveries.map((d) => this.deps.backend.release(d.lease).catch(() => undefined)),
      );
      return;
    }
    result.deliveries.forEach((delivery, i) => this.run(delivery, i < probes));
    if (requested > 0 && result.deliveries.length === requested) this.claimAgain = true;
    else if (requested > 0 && this.news === newsWhenSized) this.backlog = false;
    this.scheduleWake(result.nextDueAt);
    // A claim sized to nothing because the breaker opened meanwhile must still wake up when
    // the breaker lets probes through — at once if its recovery timeout ran out while the claim
    // was on its way (nothing else would wake this runner: no attempt is running).
    const reopensAt = this.destination.breaker?.nextAttemptAt() ?? null;
    if (reopensAt !== null) this.scheduleWake(reopensAt);
    else if (sizedWhileOpen) this.claimAgain = true;
  }

  /**
   * How many attempts may start: all free slots while the breaker is closed (or absent), none
   * while open (`open` says so), and the free probe slots (reserved here) while half-open.
   */
  private admit(free: number): { allowed: number; probes: number; open: boolean } {
    const breaker = this.destination.breaker;
    if (!breaker || free === 0) return { allowed: free, probes: 0, open: false };
    const state = breaker.getState();
    if (state.kind === 'closed') return { allowed: free, probes: 0, open: false };
    if (state.kind === 'open') return { allowed: 0, probes: 0, open: true };
    let probes = 0;
    const wanted = Math.min(free, breaker.halfOpenMaxProbes - state.probesInFlight);
    while (probes < wanted && breaker.tryAcquire()) probes += 1;
    return { allowed: probes, probes, open: false };
  }

  private releaseProbes(count: number): void {
    for (let i = 0; i < count; i++) this.destination.breaker?.release();
  }

  private scheduleWake(at: number | null): void {
    if (at === null) return;
    const now = this.deps.clock.now();
    if (at <= now) {
      // Already due (it fell due while the claim was committing, or capacity was full):
      // claim again at once if there is room; otherwise a finishing attempt will.
      this.expectWork();
      if (this.busy < this.destination.concurrency) this.claimAgain = true;
      return;
    }
    if (at >= this.wakeAt && this.cancelWake) return;
    this.cancelWake?.();
    this.wakeAt = at;
    // Timers overflow past 2^31-1 ms; a far wake-up simply looks again after a day.
    this.cancelWake = this.deps.clock.setTimer(
      () => {
        this.cancelWake = null;
        this.wakeAt = Number.POSITIVE_INFINITY;
        this.expectWork();
        this.pump();
      },
      Math.min(at - now, MAX_SLEEP_MS),
    );
  }

  private scheduleRenewal(): void {
    const every = Math.max(10, Math.floor(this.destination.leaseMs / 3));
    this.cancelRenew = this.deps.clock.setTimer(() => {
      this.renewLeases().finally(() => {
        if (this.cancelRenew) this.scheduleRenewal();
      });
    }, every);
  }

  private async renewLeases(): Promise<void> {
    const flights = [...this.inFlight.values()].filter((f) => !f.released);
    if (flights.length === 0) return;
    try {
      const lost = new Set(
        await this.deps.backend.extendLeases(
          flights.map((f) => f.lease),
          this.destination.leaseMs,
        ),
      );
      for (const flight of flights) {
        if (lost.has(flight.lease.deliveryId)) {
          flight.controller.abort(
            new LeaseLostError(`lease of delivery ${flight.lease.deliveryId} was lost`),
          );
        }
      }
    } catch (error) {
      this.deps.events.emit('processor:error', { error, during: `renew leases ${this.name}` });
    }
  }

  private run(delivery: ClaimedDelivery, probe: boolean): void {
    const info: DeliveryInfo = {
      deliveryId: delivery.lease.deliveryId,
      destination: this.name,
      eventId: delivery.event.eventId,
      type: delivery.event.type,
      correlationId: delivery.event.correlationId,
      attempt: delivery.attempt,
    };
    const controller = new AbortController();
    let settle!: () => void;
    const flight: InFlight = {
      lease: delivery.lease,
      info,
      controller,
      done: new Promise<void>((resolve) => (settle = resolve)),
      released: false,
      slotFreed: false,
      probe,
    };
    this.inFlight.set(info.deliveryId, flight);
    this.busy += 1;
    if (delivery.recoveredLease) {
      this.deps.events.emit('delivery:lease-recovered', { ...info, leaseExpiries: delivery.leaseExpiries });
    }
    this.attempt(delivery, flight)
      .catch((error: unknown) => this.deps.events.emit('processor:error', { error, during: 'settle' }))
      .finally(() => {
        this.inFlight.delete(info.deliveryId);
        settle();
        this.freeSlot(flight);
      });
  }

  private async attempt(delivery: ClaimedDelivery, flight: InFlight): Promise<void> {
    const { clock, events } = this.deps;
    const { retry } = this.destination;
    const startedAt = clock.now();

    if (delivery.attempt > retry.maxAttempts) {
      // The previous worker died during the last allowed attempt: do not run it again.
      const error = new LeaseExpiredError(
        `attempt ${delivery.attempt - 1} of ${retry.maxAttempts} was lost with its worker; no attempts left`,
      );
      if (flight.probe) this.destination.breaker?.release();
      await this.settleFailure(flight, { startedAt, durationMs: 0, error: toErrorInfo(error) }, error, false);
      return;
    }

    events.emit('delivery:started', flight.info);
    let failure: { error: unknown } | null = null;
    try {
      await this.invoke(delivery, flight);
    } catch (error) {
      failure = { error };
    }
    if (flight.released) {
      if (flight.probe) this.destination.breaker?.release();
      return;
    }
    const durationMs = clock.now() - startedAt;
    if (failure === null) {
      this.destination.breaker?.recordSuccess();
      const ok = await this.settle(flight, () =>
        this.deps.backend.complete(flight.lease, { startedAt, durationMs }),
      );
      if (ok) events.emit('delivery:succeeded', { ...flight.info, durationMs });
      return;
    }
    await this.settleFailure(
      flight,
      { startedAt, durationMs, error: toErrorInfo(failure.error) },
      failure.error,
    );
  }

  private async settleFailure(
    flight: InFlight,
    report: AttemptReport,
    error: unknown,
    fromHandler = true,
  ): Promise<void> {
    const { backend, clock, events } = this.deps;
    const errorInfo = report.error ?? toErrorInfo(error);
    // Only retryable failures are the destination's fault; a permanent one is the event's.
    const destinationFault = fromHandler && this.destination.retry.isRetryable(error);
    const breaker = this.destination.breaker;
    if (breaker && fromHandler) {
      if (destinationFault) breaker.recordFailure();
      else if (flight.probe) breaker.release();
    }
    if (breaker && flight.probe && destinationFault) {
      // A failed probe re-opened the breaker: charged to the destination, not to the event.
      const runAt = Math.max(clock.now(), breaker.nextAttemptAt() ?? clock.now());
      events.emit('delivery:failed', {
        ...flight.info,
        durationMs: report.durationMs,
        error: errorInfo,
        willRetry: true,
      });
      const ok = await this.settle(flight, () =>
        backend.retry(flight.lease, report, runAt, { charge: false }),
      );
      if (ok) {
        events.emit('delivery:retry-scheduled', {
          ...flight.info,
          runAt,
          delayMs: runAt - clock.now(),
          error: errorInfo,
        });
      }
      return;
    }
    const decision = this.destination.retry.decide(error, flight.info.attempt);
    events.emit('delivery:failed', {
      ...flight.info,
      durationMs: report.durationMs,
      error: errorInfo,
      willRetry: decision.kind === 'retry',
    });
    if (decision.kind === 'retry') {
      const runAt = clock.now() + decision.delayMs;
      const ok = await this.settle(flight, () => backend.retry(flight.lease, report, runAt));
      if (ok)
        events.emit('delivery:retry-scheduled', {
          ...flight.info,
          runAt,
          delayMs: decision.delayMs,
          error: errorInfo,
        });
      return;
    }
    const ok = await this.settle(flight, () =>
      backend.deadLetter(flight.lease, report, this.destination.spec.onDeadLetter),
    );
    if (ok)
      events.emit('delivery:dead-lettered', { ...flight.info, error: errorInfo, reason: decision.reason });
  }

  /**
   * Issues the write that records an attempt's outcome and frees its slot at once, so the next
   * claim joins the same group commit. A lost lease is reported, not thrown. Answers whether
   * the outcome was recorded.
   */
  private async settle(flight: InFlight, write: () => Promise<void>): Promise<boolean> {
    const written = write();
    this.freeSlot(flight);
    try {
      await written;
      return true;
    } catch (error) {
      if (error instanceof LeaseLostError) {
        this.deps.events.emit('delivery:lease-lost', flight.info);
        return false;
      }
      throw error;
    }
  }

  private freeSlot(flight: InFlight): void {
    if (flight.slotFreed) return;
    flight.slotFreed = true;
    this.busy -= 1;
    this.pump();
  }

  /** Calls the handler, racing it against the attempt timeout. */
  private invoke(delivery: ClaimedDelivery, flight: InFlight): Promise<unknown> {
    const { handler, timeoutMs } = this.destination;
    const logger = this.deps.logger;
    let childLogger: Logger | null = null;
    const ctx: HandlerContext = {
      attempt: delivery.attempt,
      deliveryId: flight.info.deliveryId,
      destination: this.name,
      signal: flight.controller.signal,
      get logger(): Logger {
        childLogger ??= logger.child({
          eventId: flight.info.eventId,
          correlationId: flight.info.correlationId,
          destination: flight.info.destination,
          deliveryId: flight.info.deliveryId,
          attempt: flight.info.attempt,
        });
        return childLogger;
      },
    };
    return new Promise<unknown>((resolve, reject) => {
      const cancelTimeout = this.deps.clock.setTimer(() => {
        const error = new HandlerTimeoutError(`handler did not settle within ${timeoutMs} ms`);
        flight.controller.abort(error);
        reject(error);
      }, timeoutMs);
      const onAbort = (): void => {
        cancelTimeout();
        reject(flight.controller.signal.reason);
      };
      flight.controller.signal.addEventListener('abort', onAbort, { once: true });
      const done = (settleWith: () => void): void => {
        cancelTimeout();
        flight.controller.signal.removeEventListener('abort', onAbort);
        settleWith();
      };
      try {
        Promise.resolve(handler(delivery.event, ctx)).then(
          (value) => done(() => resolve(value)),
          (error: unknown) => done(() => reject(error)),
        );
      } catch (error) {
        done(() => reject(error));
      }
    });
  }
}
