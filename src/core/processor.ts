import type { Logger } from 'pino';
import type {
  Backend,
  DeadLetterSelector,
  DeadLetterStats,
  DeadLetterStore,
  DestinationRecord,
  EventRecord,
  PublishResult,
  PurgeResult,
  QueueStats,
} from '../backends/backend.js';
import type { CancelTimer, Clock } from '../clock.js';
import { Dispatcher } from '../dispatcher/dispatcher.js';
import {
  DestinationConflictError,
  ProcessorClosedError,
  ShuttingDownError,
  ValidationError,
} from '../errors.js';
import { toEnvelope, type EventEnvelope, type EventInput } from '../event.js';
import type { JsonValue } from '../json.js';
import {
  assessHealth,
  QueueTrend,
  type HealthStatus,
  type HealthThresholds,
} from '../observability/health.js';
import { subscribeLogs } from '../observability/log-subscriber.js';
import { createLogger } from '../observability/logger.js';
import { AlertMonitor, type AlertListener } from '../observability/alerts.js';
import { createPrometheusMetrics, type PrometheusMetrics } from '../observability/prometheus.js';
import {
  MetricsCollector,
  type DestinationCounters,
  type ProcessingCounters,
} from '../observability/metrics.js';
import { resolveDestination, type DestinationOptions, type Handler } from './destination.js';
import { resolveOptions, type ProcessorOptions, type ResolvedOptions } from './options.js';
import { ProcessorEvents, type ProcessorEventName, type ProcessorListener } from './processor-events.js';

export interface AddEventResult {
  readonly eventId: string;
  readonly duplicate: boolean;
  readonly correlationId: string;
  /** Destinations a delivery was created for (empty for a duplicate). */
  readonly destinations: readonly string[];
}

export interface ProcessorMetrics extends ProcessingCounters {
  /** Unfinished deliveries in the store (all processes). */
  readonly queueDepth: number;
  /** Dead letters in the store (all processes). */
  readonly deadLetterCount: number;
  /** Attempts running in this process now. */
  readonly activeAttempts: number;
}

export interface ProcessorStats {
  readonly queue: QueueStats;
  readonly deadLetters: DeadLetterStats;
  readonly metrics: ProcessorMetrics;
  /** Outcomes per destination in this process since it started. */
  readonly destinations: Readonly<Record<string, DestinationCounters>>;
  /** Circuit state of each destination this process runs (`none` without a breaker). */
  readonly circuits: Readonly<Record<string, 'closed' | 'open' | 'half-open' | 'none'>>;
}

export type ProcessorState = 'idle' | 'running' | 'stopping' | 'stopped';

/**
 * The library's entry point: declare destinations, `start()`, `addEvent()`, and operate the
 * dead-letter queue. Ingest works without `start()` (a producer-only process); `start()` makes
 * this process also deliver to the destinations it declared.
 */
export class ReliableEventProcessor {
  readonly logger: Logger;
  readonly deadLetters: DeadLetterStore;

  private readonly options: ResolvedOptions;
  private readonly backend: Backend;
  private readonly clock: Clock;
  private readonly events = new ProcessorEvents();
  private readonly dispatcher: Dispatcher;
  private readonly metrics: MetricsCollector;
  private readonly unsubscribeLogs: () => void;
  private readonly declared = new Set<string>();
  /** Opening the store and recording declared destinations, in order. Ingest waits for it. */
  private setup: Promise<void> | null = null;
  private pendingRegistrations: Promise<void>[] = [];
  private cancelCleanup: CancelTimer | null = null;
  private lifecycle: ProcessorState = 'idle';
  private stopping: Promise<void> | null = null;
  private readonly prometheusMetrics: PrometheusMetrics;
  private readonly alerts: AlertMonitor;
  private readonly queueTrend: QueueTrend;

  constructor(options: ProcessorOptions = {}) {
    this.options = resolveOptions(options);
    this.backend = this.options.backend;
    this.clock = this.options.clock;
    this.logger = createLogger(this.options.logger);
    this.dispatcher = new Dispatcher({
      backend: this.backend,
      clock: this.clock,
      events: this.events,
      logger: this.logger,
      workerId: this.options.workerId,
    });
    this.metrics = new MetricsCollector(this.events, () => this.clock.now());
    this.unsubscribeLogs = subscribeLogs(this.events, this.logger);
    this.prometheusMetrics = createPrometheusMetrics(this);
    this.queueTrend = new QueueTrend(this.options.health.trendWindowMs);
    this.alerts = new AlertMonitor(this, {
      clock: this.clock,
      thresholds: this.options.alerts,
      onError: (error) => this.events.emit('processor:error', { error, during: 'alerts' }),
    });
    this.alerts.onAlert((alert) =>
      this.logger[alert.severity === 'info' || alert.resolved ? 'info' : 'warn'](
        {
          alert: alert.type,
          severity: alert.severity,
          destination: alert.destination,
          figures: alert.figures,
        },
        `alert${alert.resolved ? ' resolved' : ''}: ${alert.message}`,
      ),
    );
    this.deadLetters = this.wrapDeadLetters();
  }

  /**
   * Prometheus metrics of this processor (prom-client), fed by the core's events from
   * construction on. The service serves them on `/metrics`.
   */
  get prometheus(): PrometheusMetrics {
    return this.prometheusMetrics;
  }

  /** The prom-client registry holding the `steadfast_*` metrics; scrape it with `metrics()`. */
  get metricsRegistry(): PrometheusMetrics['registry'] {
    return this.prometheus.registry;
  }

  get state(): ProcessorState {
    return this.lifecycle;
  }

  get workerId(): string {
    return this.options.workerId;
  }

  /**
   * Alerts, each raised once per crossing: dead letters over a threshold, the oldest dead letter
   * over an age, a breaker opening and closing, a backlog over a threshold, a delivery whose
   * lease expired twice. Answers a function that unsubscribes.
   */
  onAlert(listener: AlertListener): () => void {
    return this.alerts.onAlert(listener);
  }

  /** Subscribe to a core event; answers a function that unsubscribes. */
  on<K extends ProcessorEventName>(name: K, listener: ProcessorListener<K>): () => void {
    return this.events.on(name, listener);
  }

  once<K extends ProcessorEventName>(name: K, listener: ProcessorListener<K>): () => void {
    return this.events.once(name, listener);
  }

  off<K extends ProcessorEventName>(name: K, listener: ProcessorListener<K>): void {
    this.events.off(name, listener);
  }

  /**
   * Declares a destination this process delivers to. It is recorded in the store, so every
   * process sharing the store fans matching events out to it from now on.
   */
  destination<P extends JsonValue = JsonValue>(
    name: string,
    options: DestinationOptions,
    handler: Handler<P>,
  ): this {
    this.assertUsable();
    if (this.declared.has(name)) {
      throw new DestinationConflictError(`destination ${name} is already declared in this processor`);
    }
    const resolved = resolveDestination(name, options, handler as Handler, this.clock);
    this.declared.add(name);
    this.pendingRegistrations.push(this.ready().then(() => this.backend.registerDestination(resolved.spec)));
    this.dispatcher.add(resolved);
    return this;
  }

  /** Stops fan-out to a destination for every process; existing deliveries are kept. */
  async retireDestination(name: string): Promise<boolean> {
    await this.ready();
    return this.backend.retireDestination(name);
  }

  async listDestinations(): Promise<DestinationRecord[]> {
    await this.ready();
    return this.backend.listDestinations();
  }

  /** Opens the store, records the destinations and begins delivering. */
  /**
   * Connects the backend and records every destination declared so far, without claiming any
   * work: what a gateway-only process needs. `start()` and the first `addEvent()` do this too.
   */
  async open(): Promise<void> {
    this.assertUsable();
    await this.registered();
  }

  async start(): Promise<void> {
    this.assertUsable();
    if (this.lifecycle === 'running') return;
    await this.registered();
    this.lifecycle = 'running';
    this.dispatcher.start();
    this.alerts.start();
    this.scheduleCleanup();
    this.events.emit('processor:started', {
      workerId: this.options.workerId,
      destinations: this.dispatcher.destinations,
    });
  }

  /**
   * Stops accepting events and claiming work, waits up to `timeoutMs` for running attempts,
   * hands the rest back uncounted, flushes and closes the store. Safe to call twice.
   */
  stop(options: { timeoutMs?: number } = {}): Promise<void> {
    this.stopping ??= this.shutdown(options.timeoutMs ?? this.options.shutdownTimeoutMs);
    return this.stopping;
  }

  /** Validates, stores durably and fans out one event. Resolves after the commit. */
  async addEvent(input: EventInput): Promise<AddEventResult> {
    const [result] = await this.addEvents([input]);
    return result as AddEventResult;
  }

  /** Stores several events in one transaction: all are stored or none. */
  async addEvents(inputs: readonly EventInput[]): Promise<AddEventResult[]> {
    this.assertAccepting();
    if (!Array.isArray(inputs)) {
      throw new ValidationError([{ field: '(events)', message: 'expected an array of events' }]);
    }
    const started = performance.now();
    const now = this.clock.now();
    const envelopes: EventEnvelope[] = inputs.map((input, index) =>
      toEnvelope(input, {
        now,
        maxPayloadBytes: this.options.maxPayloadBytes,
        index: inputs.length > 1 ? index : undefined,
      }),
    );
    if (envelopes.length === 0) return [];
    await this.registered();
    this.assertAccepting();
    const handOff = this.dispatcher.handOff();
    let results: PublishResult[];
    try {
      results = await this.backend.publish(envelopes, {
        dedupWindowMs: this.options.dedupWindowMs,
        ...(handOff ? { handOff } : {}),
      });
    } catch (error) {
      handOff?.cancel();
      throw error;
    }
    handOff?.deliver(results.flatMap((result) => result.taken ?? []));
    const latencyMs = performance.now() - started;
    return results.map((result, i) => {
      const envelope = envelopes[i] as EventEnvelope;
      this.events.emit('event:accepted', {
        eventId: result.eventId,
        type: envelope.type,
        correlationId: envelope.correlationId,
        duplicate: result.duplicate,
        destinations: result.destinations,
        latencyMs,
      });
      return {
        eventId: result.eventId,
        duplicate: result.duplicate,
        correlationId: envelope.correlationId,
        destinations: result.destinations,
      };
    });
  }

  /** The event, and per delivery its state, every attempt and the next attempt time. */
  async getEvent(eventId: string): Promise<EventRecord | null> {
    await this.ready();
    return this.backend.getEvent(eventId);
  }

  async getMetrics(): Promise<ProcessorMetrics> {
    await this.ready();
    const [queue, dead] = await Promise.all([this.backend.queueStats(), this.backend.deadLetters.stats()]);
    return {
      ...this.metrics.snapshot(),
      queueDepth: queue.depth,
      deadLetterCount: dead.count,
      activeAttempts: this.dispatcher.active,
    };
  }

  /**
   * Everything an operator's dashboard shows: unfinished work per destination (all processes),
   * dead-letter figures, and this process's counters, overall and per destination.
   */
  async getStats(): Promise<ProcessorStats> {
    await this.ready();
    const [queue, deadLetters, metrics] = await Promise.all([
      this.backend.queueStats(),
      this.backend.deadLetters.stats(),
      this.getMetrics(),
    ]);
    return {
      queue,
      deadLetters,
      metrics,
      destinations: this.metrics.destinations(),
      circuits: this.dispatcher.circuitStates(),
    };
  }

  async getHealthStatus(): Promise<HealthStatus> {
    let backendError: unknown = null;
    let queue = null;
    let deadLetters = null;
    try {
      await this.ready();
      await this.backend.ping();
      [queue, deadLetters] = await Promise.all([this.backend.queueStats(), this.backend.deadLetters.stats()]);
    } catch (error) {
      backendError = error;
    }
    return assessHealth(
      {
        backendError,
        queue,
        deadLetters,
        failure: this.metrics.failureRate(),
        queueTrend: queue ? this.queueTrend.record(this.clock.now(), queue.depth) : null,
        circuits: this.dispatcher.circuitStates(),
        dispatch: this.backend.dispatchHealth?.() ?? null,
        now: this.clock.now(),
      },
      this.options.health as HealthThresholds,
    );
  }

  /** Runs the retention clean-up now (it also runs every `cleanupIntervalMs` while started). */
  async cleanup(): Promise<PurgeResult> {
    await this.ready();
    const now = this.clock.now();
    const total = { events: 0, dedupEntries: 0 };
    for (;;) {
      const result = await this.backend.purge({
        deliveredBefore: now - this.options.retentionMs,
        dedupBefore: now - this.options.dedupWindowMs,
      });
      total.events += result.events;
      total.dedupEntries += result.dedupEntries;
      if (result.events === 0 && result.dedupEntries === 0) break;
    }
    if (total.events > 0 || total.dedupEntries > 0) this.events.emit('maintenance:purged', total);
    return total;
  }

  private ready(): Promise<void> {
    if (this.lifecycle === 'stopped')
      return Promise.reject(new ProcessorClosedError('the processor is stopped'));
    this.setup ??= this.backend.open();
    return this.setup;
  }

  /** Open, and every destination declared so far recorded. */
  private async registered(): Promise<void> {
    await this.ready();
    if (this.pendingRegistrations.length > 0) {
      const pending = this.pendingRegistrations;
      await Promise.all(pending);
      this.pendingRegistrations = this.pendingRegistrations.filter((p) => !pending.includes(p));
    }
  }

  private assertUsable(): void {
    if (this.lifecycle === 'stopped' || this.lifecycle === 'stopping') {
      throw new ProcessorClosedError('the processor is stopped');
    }
  }

  private assertAccepting(): void {
    if (this.lifecycle === 'stopping') throw new ShuttingDownError('the processor is shutting down');
    if (this.lifecycle === 'stopped') throw new ProcessorClosedError('the processor is stopped');
  }

  private scheduleCleanup(): void {
    this.cancelCleanup = this.clock.setTimer(() => {
      this.cleanup()
        .catch((error: unknown) => this.events.emit('processor:error', { error, during: 'cleanup' }))
        .finally(() => {
          if (this.lifecycle === 'running') this.scheduleCleanup();
        });
    }, this.options.cleanupIntervalMs);
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    const wasOpen = this.setup !== null;
    this.lifecycle = 'stopping';
    this.cancelCleanup?.();
    this.alerts.stop();
    let released = 0;
    try {
      if (this.dispatcher.started) released = await this.dispatcher.stop(timeoutMs);
      await Promise.allSettled(this.pendingRegistrations);
    } finally {
      if (wasOpen) await this.backend.close();
      this.lifecycle = 'stopped';
      this.events.emit('processor:stopped', { released });
      this.metrics.close();
      this.prometheusMetrics.close();
      this.unsubscribeLogs();
    }
  }

  private wrapDeadLetters(): DeadLetterStore {
    const store = (): DeadLetterStore => this.backend.deadLetters;
    return {
      list: async (query) => (await this.ready(), store().list(query)),
      get: async (id) => (await this.ready(), store().get(id)),
      stats: async () => (await this.ready(), store().stats()),
      replay: async (selector: DeadLetterSelector) => {
        await this.ready();
        const result = await store().replay(selector);
        if (result.replayed > 0) this.events.emit('dead-letters:replayed', { ids: result.ids });
        return result;
      },
      delete: async (selector: DeadLetterSelector) => {
        await this.ready();
        const result = await store().delete(selector);
        if (result.deleted > 0) this.events.emit('dead-letters:deleted', { ids: result.ids });
        return result;
      },
    };
  }
}

/** Builds a processor. Nothing touches the disk until the first call that needs the store. */
export function createProcessor(options?: ProcessorOptions): ReliableEventProcessor {
  return new ReliableEventProcessor(options);
}
