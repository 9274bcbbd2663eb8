import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ProcessorStats, ReliableEventProcessor } from '../core/processor.js';

export interface PrometheusMetrics {
  readonly registry: Registry;
  /** Counts one HTTP request by route pattern and status code. */
  observeHttp(route: string, status: number, seconds: number): void;
  /** Stops listening to the processor. */
  close(): void;
}

/**
 * Prometheus metrics fed by the processor's typed events (the core never imports prom-client).
 * Queue and dead-letter gauges are read from the store at scrape time.
 */
export function createPrometheusMetrics(processor: ReliableEventProcessor): PrometheusMetrics {
  const registry = new Registry();
  const ingested = new Counter({
    name: 'steadfast_events_ingested_total',
    help: 'Events accepted, by type and whether they were duplicates',
    labelNames: ['type', 'duplicate'] as const,
    registers: [registry],
  });
  const ingestLatency = new Histogram({
    name: 'steadfast_ingest_latency_seconds',
    help: 'Time from addEvent to its durable commit',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const deliveries = new Counter({
    name: 'steadfast_deliveries_total',
    help: 'Attempt outcomes by destination: succeeded, failed (attempt), retried, dead_lettered',
    labelNames: ['destination', 'outcome'] as const,
    registers: [registry],
  });
  const attemptDuration = new Histogram({
    name: 'steadfast_attempt_duration_seconds',
    help: 'Duration of delivery attempts by destination',
    labelNames: ['destination'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry],
  });
  const http = new Counter({
    name: 'steadfast_http_requests_total',
    help: 'HTTP requests by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'steadfast_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [registry],
  });
  // One read of the store per scrape, shared by every gauge below.
  let snapshot: Promise<ProcessorStats> | null = null;
  const stats = (): Promise<ProcessorStats> => {
    snapshot ??= processor.getStats().finally(() => setImmediate(() => (snapshot = null)));
    return snapshot;
  };
  const destinationsOf = (s: ProcessorStats): string[] => [
    ...new Set([...Object.keys(s.circuits), ...Object.keys(s.queue.byDestination)]),
  ];
  new Gauge({
    name: 'steadfast_queue_depth',
    help: 'Unfinished deliveries by destination (all processes)',
    labelNames: ['destination'] as const,
    registers: [registry],
    async collect() {
      const s = await stats();
      this.reset();
      for (const name of destinationsOf(s)) {
        const d = s.queue.byDestination[name];
        this.set({ destination: name }, d ? d.pending + d.retrying + d.processing : 0);
      }
    },
  });
  new Gauge({
    name: 'steadfast_oldest_pending_age_seconds',
    help: 'Age of the oldest unfinished delivery by destination (all processes)',
    labelNames: ['destination'] as const,
    registers: [registry],
    async collect() {
      const s = await stats();
      this.reset();
      for (const name of destinationsOf(s)) {
        this.set({ destination: name }, (s.queue.byDestination[name]?.oldestPendingAgeMs ?? 0) / 1000);
      }
    },
  });
  new Gauge({
    name: 'steadfast_dead_letters',
    help: 'Dead letters in the store (all processes)',
    registers: [registry],
    async collect() {
      this.set((await stats()).deadLetters.count);
    },
  });
  new Gauge({
    name: 'steadfast_dead_letters_oldest_age_seconds',
    help: 'Age of the oldest dead letter; 0 when there are none',
    registers: [registry],
    async collect() {
      this.set(((await stats()).deadLetters.oldestAgeMs ?? 0) / 1000);
    },
  });
  const STATE_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;
  new Gauge({
    name: 'steadfast_circuit_state',
    help: 'Circuit breaker state by destination run here: 0 closed, 1 half-open, 2 open',
    labelNames: ['destination'] as const,
    registers: [registry],
    async collect() {
      const s = await stats();
      this.reset();
      for (const [name, state] of Object.entries(s.circuits)) {
        if (state !== 'none') this.set({ destination: name }, STATE_VALUE[state]);
      }
    },
  });
  const circuitTrips = new Counter({
    name: 'steadfast_circuit_trips_total',
    help: 'Times a destination circuit breaker opened',
    labelNames: ['destination'] as const,
    registers: [registry],
  });
  // The dead-letter names of a recovery consumer: consumed (dead-lettered), reprocessed
  // (replayed), deleted.
  const dlqMessages = new Counter({
    name: 'steadfast_dlq_messages_total',
    help: 'Dead-letter queue traffic by status: consumed, reprocessed, deleted',
    labelNames: ['status'] as const,
    registers: [registry],
  });

  // Labelled children are looked up once per label set, not hashed on every event.
  const cached = <T>(make: (key: string) => T): ((key: string) => T) => {
    const children = new Map<string, T>();
    return (key) => {
      let child = children.get(key);
      if (!child) {
        child = make(key);
        children.set(key, child);
      }
      return child;
    };
  };
  const ingestedOf = cached((key) => {
    const [duplicate, type] = [key.slice(0, 1) === '1' ? 'true' : 'false', key.slice(1)];
    return ingested.labels({ type, duplicate });
  });
  const outcomeOf = cached((key) => {
    const at = key.indexOf('\u0000');
    return deliveries.labels({ destination: key.slice(at + 1), outcome: key.slice(0, at) });
  });
  const durationOf = cached((destination) => attemptDuration.labels({ destination }));

  const off = [
    processor.on('circuit:state-changed', (e) => {
      if (e.to === 'open') circuitTrips.inc({ destination: e.destination });
    }),
    processor.on('dead-letters:replayed', (e) => dlqMessages.inc({ status: 'reprocessed' }, e.ids.length)),
    processor.on('dead-letters:deleted', (e) => dlqMessages.inc({ status: 'deleted' }, e.ids.length)),
    processor.on('event:accepted', (e) => {
      ingestedOf((e.duplicate ? '1' : '0') + e.type).inc();
      ingestLatency.observe(e.latencyMs / 1000);
    }),
    processor.on('delivery:succeeded', (e) => {
      outcomeOf(`succeeded\u0000${e.destination}`).inc();
      durationOf(e.destination).observe(e.durationMs / 1000);
    }),
    processor.on('delivery:failed', (e) => {
      outcomeOf(`failed\u0000${e.destination}`).inc();
      durationOf(e.destination).observe(e.durationMs / 1000);
    }),
    processor.on('delivery:retry-scheduled', (e) => outcomeOf(`retried\u0000${e.destination}`).inc()),
    processor.on('delivery:dead-lettered', (e) => {
      outcomeOf(`dead_lettered\u0000${e.destination}`).inc();
      dlqMessages.inc({ status: 'consumed' });
    }),
  ];

  return {
    registry,
    observeHttp(route, status, seconds) {
      http.inc({ route, status: String(status) });
      httpDuration.observe({ route }, seconds);
    },
    close: () => off.forEach((f) => f()),
  };
}
