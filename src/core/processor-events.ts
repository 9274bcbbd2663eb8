import { EventEmitter } from 'node:events';
import type { ErrorInfo, PurgeResult } from '../backends/backend.js';

/** Identifies one attempt of one delivery in every delivery event. */
export interface DeliveryInfo {
  readonly deliveryId: string;
  readonly destination: string;
  readonly eventId: string;
  readonly type: string;
  readonly correlationId: string;
  readonly attempt: number;
}

/** Everything the core announces. Metrics, logs and alerts subscribe; the core imports none of them. */
export interface ProcessorEventMap {
  'event:accepted': {
    readonly eventId: string;
    readonly type: string;
    readonly correlationId: string;
    readonly duplicate: boolean;
    readonly destinations: readonly string[];
    readonly latencyMs: number;
  };
  'delivery:started': DeliveryInfo;
  'delivery:succeeded': DeliveryInfo & { readonly durationMs: number };
  'delivery:failed': DeliveryInfo & {
    readonly durationMs: number;
    readonly error: ErrorInfo;
    readonly willRetry: boolean;
  };
  'delivery:retry-scheduled': DeliveryInfo & {
    readonly runAt: number;
    readonly delayMs: number;
    readonly error: ErrorInfo;
  };
  'delivery:dead-lettered': DeliveryInfo & {
    readonly error: ErrorInfo;
    readonly reason: 'permanent' | 'exhausted';
  };
  /** A graceful stop handed the delivery back; the attempt does not count. */
  'delivery:released': DeliveryInfo;
  /** Another worker took the delivery over before this one settled it; the result was dropped. */
  'delivery:lease-lost': DeliveryInfo;
  /** This worker took over a delivery whose previous worker died or stalled. */
  'delivery:lease-recovered': DeliveryInfo & { readonly leaseExpiries: number };
  /** A destination's circuit breaker changed state. While open, nothing is claimed for it. */
  'circuit:state-changed': {
    readonly destination: string;
    readonly from: 'closed' | 'open' | 'half-open';
    readonly to: 'closed' | 'open' | 'half-open';
    readonly reason: string;
    readonly trips: number;
    readonly at: number;
  };
  'dead-letters:replayed': { readonly ids: readonly string[] };
  'dead-letters:deleted': { readonly ids: readonly string[] };
  'processor:started': { readonly workerId: string; readonly destinations: readonly string[] };
  'processor:stopped': { readonly released: number };
  'maintenance:purged': PurgeResult;
  /** Something failed outside any handler (the store, a timer). The processor keeps going. */
  'processor:error': { readonly error: unknown; readonly during: string };
}

export type ProcessorEventName = keyof ProcessorEventMap;
export type ProcessorListener<K extends ProcessorEventName> = (payload: ProcessorEventMap[K]) => void;

/** A typed facade over Node's EventEmitter. A throwing listener never breaks the core. */
export class ProcessorEvents {
  private readonly emitter = new EventEmitter({ captureRejections: false });

  constructor() {
    this.emitter.setMaxListeners(100);
  }

  on<K extends ProcessorEventName>(name: K, listener: ProcessorListener<K>): () => void {
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }

  once<K extends ProcessorEventName>(name: K, listener: ProcessorListener<K>): () => void {
    this.emitter.once(name, listener);
    return () => this.emitter.off(name, listener);
  }

  off<K extends ProcessorEventName>(name: K, listener: ProcessorListener<K>): void {
    this.emitter.off(name, listener);
  }

  emit<K extends ProcessorEventName>(name: K, payload: ProcessorEventMap[K]): void {
    if (this.emitter.listenerCount(name) === 0) return;
    for (const listener of this.emitter.listeners(name) as ProcessorListener<K>[]) {
      try {
        listener(payload);
      } catch {
        // a subscriber's bug must not stop deliveries
      }
    }
  }
}
